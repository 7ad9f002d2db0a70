// libseccomp (apt: libseccomp-dev). seccomp_rule_add is variadic and does not import:
// Sandbox uses seccomp_rule_add_array.
#pragma once
#include <seccomp.h>
