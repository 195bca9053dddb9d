/* The one object that holds the version string.  The Makefile passes
 * -DNM_VERSION and rebuilds this file whenever the git commit changes
 * (build/version.stamp), so every part of a binary reports the same
 * version -- an incremental build once wrote rows with one version and
 * checked them against another. */
#include "nm_version.h"

#ifndef NM_VERSION
#define NM_VERSION "0.1.0"
#endif

const char nm_version[] = NM_VERSION;
