#ifdef __linux__
#include "volt_vhost.h"
#include <linux/vhost.h>

const unsigned long VOLT_VHOST_SET_OWNER = VHOST_SET_OWNER;
const unsigned long VOLT_VHOST_GET_FEATURES = VHOST_GET_FEATURES;
#endif
