/* nm_version: the ntkmem version ("0.1.0-<git hash>"), written in every CSV
 * row and checked by --resume and merge. */
#ifndef NM_VERSION_H
#define NM_VERSION_H

extern const char nm_version[];

#endif
