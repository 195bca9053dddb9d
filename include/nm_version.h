#ifndef NM_VERSION_H
#define NM_VERSION_H
/* The Makefile passes -DNM_VERSION="0.1.0-<git hash>" */
#ifndef NM_VERSION
#define NM_VERSION "0.1.0"
#endif
#endif
