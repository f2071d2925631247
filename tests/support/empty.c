/* tests/support/empty.c — keeps the support library non-empty. */
typedef int tfs_test_support_empty;
