/* bench-stats.h: the order statistics every bench reports. */
#pragma once

#include <stdlib.h>

/* qsort's comparison for doubles, ascending. */
static inline int
cmp_double (const void *a, const void *b)
{
  const double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* The median of @v's @n values (n > 0); sorts @v. */
static inline double
median (double *v, int n)
{
  qsort (v, n, sizeof (double), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
