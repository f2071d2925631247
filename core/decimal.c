/* core/decimal.c — exact decimal text; see decimal.h. */
#include "decimal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int tfs_decimal_from_double(double d, char *buf, size_t size)
{
    if (size < 32)
        return TFS_ELIMIT;
    if (!isfinite(d))
        return TFS_EINVAL;
    /* The shortest of %.1g..%.17g that reads back exactly; 17 digits always do. */
    for (int prec = 1; prec <= 17; prec++) {
        int n = snprintf(buf, size, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d)
            return n;
    }
    return TFS_EINVAL; /* not reached */
}
