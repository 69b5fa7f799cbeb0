/* ge-safetensors.h: a validating .safetensors reader over shared,
 * read-only file contents (mapped, or read for small files).
 *
 * Layout: 8-byte little-endian u64 N, N bytes of JSON header, then the data
 * section.  Each header entry is {"dtype": .., "shape": [..],
 * "data_offsets": [begin, end]} with offsets relative to the data section;
 * "__metadata__" is an optional object of string values.
 *
 * Everything is validated before a single tensor byte is touched: header
 * length inside the file, JSON well-formed, known dtypes, shapes whose element
 * count times the dtype size equals end - begin (without overflow), offsets
 * inside the data section and not overlapping.  Any violation gives a
 * GE_ERROR_CORRUPT / GE_ERROR_UNSUPPORTED error whose message starts with the
 * file name.
 */
#pragma once

#include <glib.h>
#include <string.h>
#include "ge-error.h"

G_BEGIN_DECLS

/* IEEE half -> float, exact (subnormals, inf; NaNs keep their payload):
 * the loader's and the 16-bit GEMM's scalar conversion. */
static inline float
ge_f16_to_f32 (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16;
  guint32 exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0)
      bits = sign;
    else {                      /* subnormal: renormalise */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | ((guint32) (127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31)
    bits = sign | 0x7f800000u | (man << 13);
  else
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  float f;
  memcpy (&f, &bits, 4);
  return f;
}


#define GE_MAX_DIMS 8

typedef enum {
  GE_DTYPE_F32,
  GE_DTYPE_F16,
  GE_DTYPE_BF16,
  GE_DTYPE_F64,
  GE_DTYPE_I64,
  GE_DTYPE_I32,
  GE_DTYPE_I16,
  GE_DTYPE_I8,
  GE_DTYPE_U8,
  GE_DTYPE_BOOL,
} GeDType;

typedef struct {
  const char *name;
  GeDType dtype;
  int ndim;
  gint64 shape[GE_MAX_DIMS];
  gsize n_elements;
  const void *data;       /* inside the mapping; may be unaligned */
  gsize n_bytes;
} GeStTensor;

typedef struct _GeSafetensors GeSafetensors;

/* Opens @path read-only and validates it.
 *
 * The file's bytes are shared by every open of the same file in the process
 * (reference-counted; "the same file" is the same device, inode, size and
 * modification and change times), so two elements running one model hold
 * it once.  A file replaced by rename() or rewritten while open is a new
 * file to later opens; earlier ones keep the bytes they have.
 *
 * Files up to ge_safetensors_read_limit () bytes are read into memory:
 * nothing done to the file afterwards (truncation included) can reach the
 * copy.  Larger ones are mapped: truncating a mapped file in place while it
 * is in use is undefined (the process gets SIGBUS on the lost pages), so
 * replace model files with mv, never in place.  Either way tensors have the
 * alignment their file offsets give on a page boundary. */
GeSafetensors *ge_safetensors_open (const char *path, GError **error);

/* Files above this many bytes are mapped, smaller ones read:
 * GE_SAFETENSORS_READ_LIMIT, or the environment variable GE_MODEL_READ_LIMIT
 * (bytes, or with a K, M or G suffix; 0 maps every file), read at each
 * open. */
#define GE_SAFETENSORS_READ_LIMIT ((gsize) 64 << 20)
gsize ge_safetensors_read_limit (void);
/* TRUE when @st's bytes are a mapping of its file, FALSE when they were
 * read into memory (or given as bytes). */
gboolean ge_safetensors_is_mapped (const GeSafetensors *st);
/* How many distinct files the process holds open through
 * ge_safetensors_open, and how many opens share the current file at @path
 * (0 when it is not open): for tests and diagnostics. */
guint ge_safetensors_n_shared_files (void);
guint ge_safetensors_shared_holders (const char *path);
/* Validates @bytes (kept referenced); @name is used in error messages. */
GeSafetensors *ge_safetensors_new_from_bytes (GBytes *bytes, const char *name,
    GError **error);
void ge_safetensors_free (GeSafetensors *st);

const char *ge_safetensors_name (const GeSafetensors *st);
guint ge_safetensors_n_tensors (const GeSafetensors *st);
/* Tensors in file order of their data offsets. */
const GeStTensor *ge_safetensors_nth (const GeSafetensors *st, guint i);
const GeStTensor *ge_safetensors_find (const GeSafetensors *st, const char *name);
/* A value of "__metadata__", or NULL. */
const char *ge_safetensors_metadata (const GeSafetensors *st, const char *key);

const char *ge_dtype_name (GeDType dtype);
gsize ge_dtype_size (GeDType dtype);

/* Converts any float or integer tensor to f32 into @dst (n_elements floats). */
void ge_st_tensor_to_f32 (const GeStTensor *t, float *dst);
/* Converts to f64 into @dst (n_elements doubles). */
void ge_st_tensor_to_f64 (const GeStTensor *t, double *dst);
/* Reads an integer tensor (I64/I32/...) element @i; floats are truncated. */
gint64 ge_st_tensor_get_int (const GeStTensor *t, gsize i);

G_END_DECLS
