/* nm_field: the offset of a struct's field in a descriptor table, checked at
 * compile time against the C type the table's row claims for it (the
 * settings table nm_settings[], the CSV column table nm_csv_columns[]): a
 * row whose type does not match its field is a build error, not a setter
 * that writes a long into an int. */
#ifndef NM_FIELD_H
#define NM_FIELD_H
#include <stddef.h>

/* offsetof(S, f), where S's field f must have type C (after array-to-pointer
 * conversion: a char[] field is char *) and be at least size bytes. */
#define NM_FIELD(S, f, C, size)                                                               \
    (offsetof(S, f) +                                                                         \
     0 * sizeof(struct {                                                                      \
         _Static_assert(_Generic(((S *)0)->f, C: 1, default: 0), #S "." #f " is not " #C);    \
         _Static_assert(sizeof(((S *)0)->f) >= (size), #S "." #f " is too small");             \
         char c_;                                                                             \
     }))

#endif
