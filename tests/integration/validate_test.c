/* tests/integration/validate_test.c — POST /sync/validate and POST /transforms/{name}/test. */
#include <criterion/criterion.h>
