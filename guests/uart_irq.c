#include "rt.h"
void guest_main(u32 s) { (void)s; }
