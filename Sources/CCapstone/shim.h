#ifndef PVM_CCAPSTONE_SHIM_H
#define PVM_CCAPSTONE_SHIM_H
// Capstone 4.0.2 from Debian's libcapstone-dev (pkg-config capstone).
#include <capstone/capstone.h>
#endif
