/* fuzz-safetensors.c: libFuzzer target for the safetensors reader.
 *
 * Feeds the input to ge_safetensors_new_from_bytes () and, when it is
 * accepted, touches everything a caller may touch: every tensor by index and
 * by name, metadata lookups, and conversion of all data to f32/f64/int.  The
 * reader promises that validation makes all of that safe, so besides the
 * sanitizers this also checks the promises themselves (tensor bytes inside
 * the input, sizes consistent, no overlap, errors named after the input)
 * and aborts when one is broken.
 *
 * Built with -fsanitize=fuzzer,address,undefined when meson is configured
 * with CC=clang -Dfuzz=true; see README.md for longer runs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "ge-safetensors.h"

#define NAME "fuzz-input"

#define CHECK(cond) do { if (!(cond)) { \
      g_printerr ("%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      abort (); } } while (0)

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  /* GLib's slice magazines would hide use-after-free and overflows of
   * json-glib nodes from ASan. */
  g_setenv ("G_SLICE", "always-malloc", TRUE);
  /* A g_return_if_fail () firing is a bug in the reader or in this target. */
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  return 0;
}

static void
walk (const GeSafetensors * st, const uint8_t * data, size_t size)
{
  guint n = ge_safetensors_n_tensors (st);
  const guint8 *prev_end = NULL;

  CHECK (ge_safetensors_nth (st, n) == NULL);
  ge_safetensors_metadata (st, "format");
  ge_safetensors_find (st, "");

  for (guint i = 0; i < n; i++) {
    const GeStTensor *t = ge_safetensors_nth (st, i);
    const guint8 *p;
    gsize esz, nel = 1;

    CHECK (t != NULL && t->name != NULL);
    CHECK (g_utf8_validate (t->name, -1, NULL));
    CHECK (ge_safetensors_find (st, t->name) == t);
    /* A tensor name may also be a metadata key; either answer is fine. */
    ge_safetensors_metadata (st, t->name);

    CHECK (t->ndim >= 0 && t->ndim <= GE_MAX_DIMS);
    for (int d = 0; d < t->ndim; d++) {
      CHECK (t->shape[d] >= 0);
      nel *= (gsize) t->shape[d];
    }
    CHECK (nel == t->n_elements);
    esz = ge_dtype_size (t->dtype);
    CHECK (esz > 0);
    CHECK (t->n_bytes == t->n_elements * esz);

    /* Inside the input, after the header, in offset order, no overlap. */
    p = t->data;
    CHECK (p >= data + 8 && p + t->n_bytes <= data + size);
    CHECK (prev_end == NULL || p >= prev_end);
    prev_end = p + t->n_bytes;

    float *f = g_new (float, MAX (t->n_elements, 1));
    double *d = g_new (double, MAX (t->n_elements, 1));
    ge_st_tensor_to_f32 (t, f);
    ge_st_tensor_to_f64 (t, d);
    if (t->n_elements > 0) {
      ge_st_tensor_get_int (t, 0);
      ge_st_tensor_get_int (t, t->n_elements - 1);
    }
    g_free (d);
    g_free (f);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  /* Static: the reader must not read a byte past @size, and ASan knows
   * exactly where libFuzzer's buffer ends. */
  GBytes *bytes = g_bytes_new_static (data, size);
  GError *err = NULL;
  GeSafetensors *st = ge_safetensors_new_from_bytes (bytes, NAME, &err);

  if (st) {
    CHECK (err == NULL);
    CHECK (strcmp (ge_safetensors_name (st), NAME) == 0);
    walk (st, data, size);
    ge_safetensors_free (st);
  } else {
    CHECK (err != NULL && err->domain == GE_ERROR);
    CHECK (g_str_has_prefix (err->message, NAME ": "));
    CHECK (g_utf8_validate (err->message, -1, NULL));
    g_error_free (err);
  }
  g_bytes_unref (bytes);
  return 0;
}
