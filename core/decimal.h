/* core/decimal.h — exact decimal text: rounding on the digits and floats as shortest text.
 *
 * Decimal values travel as text from source to target. Rounding to a target's scale is
 * done on the digits, half away from zero, as PostgreSQL numeric does, never through a
 * double (which holds 15-17 significant digits and rounds half-way cases its own way).
 * A float that must become a decimal is first written as its shortest round-trip text
 * (tfs_decimal_from_double), then rounded on those digits like any other decimal text.
 */
#ifndef TFS_DECIMAL_H
#define TFS_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The bounds PostgreSQL puts on numeric(p,s). */
#define TFS_DECIMAL_MAX_PRECISION 1000
#define TFS_DECIMAL_MIN_SCALE (-1000)
#define TFS_DECIMAL_MAX_SCALE 1000
/* The largest exponent accepted ("1e1000"): it bounds the length of a result. PostgreSQL
 * accepts larger ones, but no column a mapping writes holds such values. */
#define TFS_DECIMAL_MAX_EXPONENT 1000
/* The longest decimal text accepted, in bytes. */
#define TFS_DECIMAL_MAX_TEXT (1 << 20)

/* Writes the shortest text that reads back (strtod) as exactly d, in plain or exponent
 * form ("1.005", "0.1", "1e+300"), into buf. Returns its length, or TFS_EINVAL for a NaN or
 * an infinity (which no decimal holds), or TFS_ELIMIT when size is under 32. */
int tfs_decimal_from_double(double d, char *buf, size_t size);

/* Writes v in decimal ("-42"), as printf's %" PRId64 " does, into buf (at least
 * TFS_DECIMAL_INT64_SIZE bytes) with a NUL; returns its length. For the hot paths (record
 * keys, hashes, validation, JSON), where snprintf's format parsing costs more than the
 * digits. */
#define TFS_DECIMAL_INT64_SIZE 21
size_t tfs_decimal_from_int64(int64_t v, char *buf);

/* Rounds the decimal text s (len bytes, no NUL needed) to scale digits after the point,
 * half away from zero, as PostgreSQL's round(numeric, scale) and a numeric(precision,
 * scale) column do, and writes the result, NUL-terminated, into out (size bytes).
 *
 * Input: an optional sign, digits with an optional point (".5" and "5." are fine) and an
 * optional exponent ("1.5e3", "2E-7", exponent at most TFS_DECIMAL_MAX_EXPONENT); no
 * blanks. Output: plain text as PostgreSQL prints numeric(p,scale): no '+', no leading
 * zeros ("0.5"), exactly scale digits after the point ("1.500" at scale 3), no point at
 * scale 0, and for a negative scale an integer rounded to 10^-scale ("130" for 125 at
 * scale -1); "-" only before a non-zero result ("-0.001" gives "0.00" at scale 2).
 *
 * precision 0 means unbounded; otherwise the rounded value must fit numeric(precision,
 * scale): below 10^(precision - scale) in absolute value.
 *
 * Returns, like snprintf, the length of the whole result even when it did not fit (then
 * out holds nothing useful: call again with a buffer of at least the result + 1 bytes), or
 * TFS_EINVAL with err set for text that is not a decimal number (the text quoted), for a
 * value that does not fit the precision (the value, precision and scale named) and for a
 * precision or scale outside PostgreSQL's bounds, or TFS_ELIMIT for text longer than
 * TFS_DECIMAL_MAX_TEXT. out may be NULL when size is 0. Allocates nothing. */
int tfs_decimal_round(const char *s, size_t len, int precision, int scale, char *out,
                      size_t size, tfs_error *err);

#endif
