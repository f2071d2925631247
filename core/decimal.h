/* core/decimal.h — exact decimal text: rounding on the digits and floats as shortest text.
 *
 * Decimal values travel as text from source to target. Rounding to a target's scale is
 * done on the digits, half away from zero, as PostgreSQL numeric does, never through a
 * double (which holds 15-17 significant digits and rounds half-way cases its own way).
 */
#ifndef TFS_DECIMAL_H
#define TFS_DECIMAL_H

#include <stddef.h>

#include "error.h"

/* Writes the shortest text that reads back (strtod) as exactly d, in plain or exponent
 * form ("1.005", "0.1", "1e+300"), into buf. Returns its length, or TFS_EINVAL for a NaN or
 * an infinity (which no decimal holds), or TFS_ELIMIT when size is under 32. */
int tfs_decimal_from_double(double d, char *buf, size_t size);

#endif
