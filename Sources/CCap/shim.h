// libcap (apt: libcap-dev): capability sets, bounding set and ambient set.
#pragma once
#include <sys/capability.h>
