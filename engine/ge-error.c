#include "ge-error.h"

G_DEFINE_QUARK (ge-error-quark, ge_error)
