/* gemm.c: see gemm.h. */
#include "gemm.h"
#include "vnni.h"
#include "ge-precision.h"
#include "ge-safetensors.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

gboolean
ge_precision_bf16_available (void)
{
  return ge_gemm_bf16_available ();
}

gboolean
ge_precision_int8_available (void)
{
  return ge_gemm_int8_available ();
}

const char *
ge_precision_name (GePrecision p)
{
  switch (p) {
    case GE_PRECISION_F32:
      return "f32";
    case GE_PRECISION_BF16:
      return "bf16";
    case GE_PRECISION_AUTO:
      return "auto";
    case GE_PRECISION_INT8:
      return "int8";
  }
  return NULL;
}

gboolean
ge_precision_from_name (const char *name, GePrecision * p)
{
  for (int i = GE_PRECISION_F32; i <= GE_PRECISION_INT8; i++)
    if (name && g_strcmp0 (name, ge_precision_name (i)) == 0) {
      *p = i;
      return TRUE;
    }
  return FALSE;
}

/* K slice: the B rows of one panel (KC x NR floats = 32 KiB) stay in L1
 * while every block of A runs over them. */
#define KC 256

gsize
ge_gemm_packed_a_size (int m, int k)
{
  return (gsize) ((m + GE_MR - 1) / GE_MR) * GE_MR * k;
}

void
ge_gemm_pack_a (const float *a, int m, int k, int lda, float *ap)
{
  for (int i0 = 0; i0 < m; i0 += GE_MR)
    for (int kk = 0; kk < k; kk++)
      for (int r = 0; r < GE_MR; r++)
        *ap++ = i0 + r < m ? a[(gsize) (i0 + r) * lda + kk] : 0.0f;
}

void
ge_gemm_pack_a_t (const float *a, int m, int k, int lda, float scale, float *ap)
{
  for (int i0 = 0; i0 < m; i0 += GE_MR)
    for (int kk = 0; kk < k; kk++) {
      const float *src = a + (gsize) kk * lda + i0;
      for (int r = 0; r < GE_MR; r++)
        *ap++ = i0 + r < m ? src[r] * scale : 0.0f;
    }
}

/* ---- 16-bit weights --------------------------------------------------- */

static inline float
half_at (const guint8 * p, GeDType dtype, gsize i)
{
  guint16 h;
  memcpy (&h, p + 2 * i, 2);    /* the mapping need not be aligned */
  if (dtype == GE_DTYPE_F16)
    return ge_f16_to_f32 (h);
  const guint32 bits = (guint32) h << 16;
  float f;
  memcpy (&f, &bits, 4);
  return f;
}

static void
pack_a16_generic (const void *a, GeDType dtype, int m, int k0, int k, gsize lda, float *ap)
{
  const guint8 *src = a;
  for (int i0 = 0; i0 < m; i0 += GE_MR)
    for (int kk = 0; kk < k; kk++)
      for (int r = 0; r < GE_MR; r++)
        *ap++ = i0 + r < m ? half_at (src, dtype, (gsize) (i0 + r) * lda + k0 + kk) : 0.0f;
}

gsize
ge_gemm_packed16_scratch (int m, int k)
{
  return ge_gemm_packed_a_size (m, MIN (k, KC));
}

/* Equal slices: a short last slice would pay a full load/store of the C
 * tile for a few k.  The 16-bit path must slice as the f32 one does to
 * add in the same order. */
static inline int
slice_len (int k)
{
  const int n_slices = (k + KC - 1) / KC;
  return (k + n_slices - 1) / n_slices;
}

#ifdef HAVE_X86

/* 16 elements of a 16-bit (or F32) row as floats; @row NULL reads zeros
 * (the rows past m of the last block), @cnt < 16 reads a tail. */
__attribute__((target ("avx512f")))
static inline __m512
load16 (const guint8 * row, GeDType dtype, int cnt)
{
  if (!row)
    return _mm512_setzero_ps ();
  if (dtype == GE_DTYPE_F32)
    return _mm512_maskz_loadu_ps ((__mmask16) ((1u << cnt) - 1), row);
  __m256i h;
  if (cnt == 16)
    h = _mm256_loadu_si256 ((const __m256i *) row);
  else {
    guint16 buf[16] = { 0 };
    memcpy (buf, row, 2 * (gsize) cnt);
    h = _mm256_loadu_si256 ((const __m256i *) buf);
  }
  if (dtype == GE_DTYPE_F16)
    return _mm512_cvtph_ps (h);
  return _mm512_castsi512_ps (_mm512_slli_epi32 (_mm512_cvtepu16_epi32 (h), 16));
}

/* Converts 16 columns of the 8 rows of a block and stores them transposed:
 * column kk's 8 rows at dst + kk * stride (stride 8: the packed-A layout
 * [16][MR]).  Unpack pairs of rows, then pairs of pairs within each 128-bit
 * lane, then gather the lanes of rows 0-3 and 4-7 with 128-bit shuffles.
 * @cnt < 16 stores only the first @cnt columns. */
__attribute__((target ("avx512f")))
static void
pack_block16 (const guint8 * const rows[GE_MR], GeDType dtype, int cnt, float *dst,
    gsize stride)
{
  __m512 r[GE_MR];
  for (int i = 0; i < GE_MR; i++)
    r[i] = load16 (rows[i], dtype, cnt);
  /* t: lane l of row pair (2p, 2p + 1): columns 4l, 4l + 1 (lo), 4l + 2, 4l + 3 (hi) */
  const __m512 t01l = _mm512_unpacklo_ps (r[0], r[1]), t01h = _mm512_unpackhi_ps (r[0], r[1]);
  const __m512 t23l = _mm512_unpacklo_ps (r[2], r[3]), t23h = _mm512_unpackhi_ps (r[2], r[3]);
  const __m512 t45l = _mm512_unpacklo_ps (r[4], r[5]), t45h = _mm512_unpackhi_ps (r[4], r[5]);
  const __m512 t67l = _mm512_unpacklo_ps (r[6], r[7]), t67h = _mm512_unpackhi_ps (r[6], r[7]);
#define LO(a, b) _mm512_castpd_ps (_mm512_unpacklo_pd (_mm512_castps_pd (a), _mm512_castps_pd (b)))
#define HI(a, b) _mm512_castpd_ps (_mm512_unpackhi_pd (_mm512_castps_pd (a), _mm512_castps_pd (b)))
  /* u[c]: lane l holds rows 0-3 (a) or 4-7 (b) of column 4l + c */
  const __m512 ua[4] = { LO (t01l, t23l), HI (t01l, t23l), LO (t01h, t23h), HI (t01h, t23h) };
  const __m512 ub[4] = { LO (t45l, t67l), HI (t45l, t67l), LO (t45h, t67h), HI (t45h, t67h) };
#undef LO
#undef HI
  /* w[c]: lanes (a l0, a l1, b l0, b l1) and (a l2, a l3, b l2, b l3) */
  __m512 wl[4], wh[4];
  for (int c = 0; c < 4; c++) {
    wl[c] = _mm512_shuffle_f32x4 (ua[c], ub[c], _MM_SHUFFLE (1, 0, 1, 0));
    wh[c] = _mm512_shuffle_f32x4 (ua[c], ub[c], _MM_SHUFFLE (3, 2, 3, 2));
  }
  /* o[j]: columns 2j, 2j + 1, all 8 rows each */
  __m512 o[8];
  o[0] = _mm512_shuffle_f32x4 (wl[0], wl[1], _MM_SHUFFLE (2, 0, 2, 0));
  o[1] = _mm512_shuffle_f32x4 (wl[2], wl[3], _MM_SHUFFLE (2, 0, 2, 0));
  o[2] = _mm512_shuffle_f32x4 (wl[0], wl[1], _MM_SHUFFLE (3, 1, 3, 1));
  o[3] = _mm512_shuffle_f32x4 (wl[2], wl[3], _MM_SHUFFLE (3, 1, 3, 1));
  o[4] = _mm512_shuffle_f32x4 (wh[0], wh[1], _MM_SHUFFLE (2, 0, 2, 0));
  o[5] = _mm512_shuffle_f32x4 (wh[2], wh[3], _MM_SHUFFLE (2, 0, 2, 0));
  o[6] = _mm512_shuffle_f32x4 (wh[0], wh[1], _MM_SHUFFLE (3, 1, 3, 1));
  o[7] = _mm512_shuffle_f32x4 (wh[2], wh[3], _MM_SHUFFLE (3, 1, 3, 1));
  if (cnt == 16 && stride == GE_MR) {
    for (int j = 0; j < 8; j++)
      _mm512_storeu_ps (dst + 16 * j, o[j]);
    return;
  }
  for (int j = 0; 2 * j < cnt; j++) {
    _mm256_storeu_ps (dst + 2 * j * stride, _mm512_castps512_ps256 (o[j]));
    if (2 * j + 1 < cnt)
      _mm256_storeu_ps (dst + (2 * j + 1) * stride,
          _mm256_castpd_ps (_mm512_extractf64x4_pd (_mm512_castps_pd (o[j]), 1)));
  }
}

static void
pack_a16_avx512 (const void *a, GeDType dtype, int m, int k0, int k, gsize lda, float *ap)
{
  for (int i0 = 0; i0 < m; i0 += GE_MR) {
    const guint8 *rows[GE_MR];
    for (int r = 0; r < GE_MR; r++)
      rows[r] = i0 + r < m ? (const guint8 *) a + 2 * ((gsize) (i0 + r) * lda + k0) : NULL;
    for (int kk = 0; kk < k; kk += 16) {
      const int cnt = MIN (16, k - kk);
      pack_block16 (rows, dtype, cnt, ap + (gsize) kk * GE_MR, GE_MR);
      for (int r = 0; r < GE_MR; r++)
        if (rows[r])
          rows[r] += 2 * cnt;
    }
    ap += (gsize) k * GE_MR;
  }
}

#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* One MR x NR tile over a K slice. */
__attribute__((target ("avx512f")))
static void
tile_8x32 (int kc, const float *ap, const float *b, const int *boff, float *c,
    int ldc, int rows, __mmask16 m0, __mmask16 m1, const float *bias, gboolean accumulate,
    gboolean prefetch)
{
  __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
#define INIT(r) \
  c##r##0 = _mm512_set1_ps (bias && r < rows ? bias[r] : 0.0f); \
  c##r##1 = c##r##0; \
  if (accumulate && r < rows) { \
    c##r##0 = _mm512_add_ps (c##r##0, _mm512_maskz_loadu_ps (m0, c + (gsize) r * ldc)); \
    c##r##1 = _mm512_add_ps (c##r##1, _mm512_maskz_loadu_ps (m1, c + (gsize) r * ldc + 16)); }
  FOR_ROWS (INIT)
#undef INIT
  if (m0 == 0xffff && m1 == 0xffff) {
    for (int kk = 0; kk < kc; kk++) {
      const float *bk = b + boff[kk];
      const __m512 b0 = _mm512_loadu_ps (bk), b1 = _mm512_loadu_ps (bk + 16);
      /* The B rows of an implicit conv are taps scattered over the input,
       * which the hardware prefetchers do not follow: the first row block
       * fetches the next panel's part of each row (prefetches never fault,
       * so running past the last panel is harmless). */
      if (prefetch) {
        _mm_prefetch ((const char *) (bk + 32), _MM_HINT_T0);
        _mm_prefetch ((const char *) (bk + 47), _MM_HINT_T0);
      }
#define ROW(r) { const __m512 a_ = _mm512_set1_ps (ap[r]); \
        c##r##0 = _mm512_fmadd_ps (a_, b0, c##r##0); \
        c##r##1 = _mm512_fmadd_ps (a_, b1, c##r##1); }
      FOR_ROWS (ROW)
      ap += GE_MR;
    }
  } else {
    for (int kk = 0; kk < kc; kk++) {
      const float *bk = b + boff[kk];
      const __m512 b0 = _mm512_maskz_loadu_ps (m0, bk), b1 = _mm512_maskz_loadu_ps (m1, bk + 16);
      FOR_ROWS (ROW)
#undef ROW
      ap += GE_MR;
    }
  }
#define STORE(r) \
  if (r < rows) { \
    _mm512_mask_storeu_ps (c + (gsize) r * ldc, m0, c##r##0); \
    _mm512_mask_storeu_ps (c + (gsize) r * ldc + 16, m1, c##r##1); }
  FOR_ROWS (STORE)
#undef STORE
}

#undef FOR_ROWS

gboolean
ge_gemm_packed_available (void)
{
  static int state = -1;
  if (state < 0) {
    __builtin_cpu_init ();
    state = __builtin_cpu_supports ("avx512f") && !g_getenv ("GE_NO_AVX512");
  }
  return state;
}

/* The masks of a panel's two 16-column halves with @cols (1 .. NR) columns. */
static inline void
col_masks (int cols, __mmask16 * m0, __mmask16 * m1)
{
  *m0 = cols >= 16 ? 0xffff : (__mmask16) ((1u << cols) - 1);
  *m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16) ((1u << (cols - 16)) - 1);
}

/* One K slice [k0, k0 + kc) over all of C; block i0 / MR of A starts at
 * ap + i0 / MR * a_block (the slice's first column). */
static void
run_slice (int m, int n, int kc, const float *ap, gsize a_block, const float *b,
    const int *boff, float *c, int ldc, const float *bias, gboolean acc)
{
  for (int j = 0; j < n; j += GE_NR) {
    const int cols = MIN (GE_NR, n - j);
    __mmask16 m0, m1;
    col_masks (cols, &m0, &m1);
    for (int i0 = 0; i0 < m; i0 += GE_MR)
      tile_8x32 (kc, ap + (gsize) (i0 / GE_MR) * a_block, b + j, boff,
          c + (gsize) i0 * ldc + j, ldc, MIN (GE_MR, m - i0), m0, m1,
          bias ? bias + i0 : NULL, acc, i0 == 0);
  }
}

void
ge_gemm_packed (int m, int n, int k, const float *ap, const float *b, const int *boff,
    float *c, int ldc, const float *bias, gboolean accumulate)
{
  const int slice = slice_len (k);
  for (int k0 = 0; k0 < k; k0 += slice)
    run_slice (m, n, MIN (slice, k - k0), ap + (gsize) k0 * GE_MR, (gsize) k * GE_MR, b,
        boff + k0, c, ldc, k0 == 0 ? bias : NULL, accumulate || k0 > 0);
}

void
ge_gemm_packed16 (int m, int n, int k, const void *a, GeDType dtype, gsize lda,
    const float *b, const int *boff, float *c, int ldc, const float *bias, gboolean accumulate,
    float *scratch)
{
  const int slice = slice_len (k);
  for (int k0 = 0; k0 < k; k0 += slice) {
    const int kc = MIN (slice, k - k0);
    pack_a16_avx512 (a, dtype, m, k0, kc, lda, scratch);
    run_slice (m, n, kc, scratch, (gsize) kc * GE_MR, b, boff + k0, c, ldc,
        k0 == 0 ? bias : NULL, accumulate || k0 > 0);
  }
}

/* Columns [j0, j0 + nc) (nc <= NR) of B = W^T over K [k0, k0 + kc), from
 * rows of the 16-bit W, into bp [kc][NR]; columns past nc are zero. */
static void
pack_bt16 (const guint8 * w, GeDType dtype, gsize ldw, int j0, int nc, int k0, int kc, float *bp)
{
  const gsize esz = dtype == GE_DTYPE_F32 ? 4 : 2;
  for (int g = 0; g < GE_NR; g += GE_MR) {
    const guint8 *rows[GE_MR];
    for (int r = 0; r < GE_MR; r++)
      rows[r] = g + r < nc ? w + esz * ((gsize) (j0 + g + r) * ldw + k0) : NULL;
    for (int kk = 0; kk < kc; kk += 16) {
      const int cnt = MIN (16, kc - kk);
      pack_block16 (rows, dtype, cnt, bp + (gsize) kk * GE_NR + g, GE_NR);
      for (int r = 0; r < GE_MR; r++)
        if (rows[r])
          rows[r] += esz * cnt;
    }
  }
}

void
ge_gemm_packed_bt16 (int m, int n, int k, const float *ap, const void *w, GeDType dtype,
    gsize ldw, float *c, int ldc, gboolean accumulate, float *bp)
{
  int boff[KC];
  const int slice = slice_len (k);
  for (int kk = 0; kk < slice; kk++)
    boff[kk] = kk * GE_NR;
  for (int k0 = 0; k0 < k; k0 += slice) {
    const int kc = MIN (slice, k - k0);
    const gboolean acc = accumulate || k0 > 0;
    for (int j = 0; j < n; j += GE_NR) {
      const int cols = MIN (GE_NR, n - j);
      __mmask16 m0, m1;
      col_masks (cols, &m0, &m1);
      pack_bt16 (w, dtype, ldw, j, cols, k0, kc, bp);
      for (int i0 = 0; i0 < m; i0 += GE_MR)
        tile_8x32 (kc, ap + ((gsize) (i0 / GE_MR) * k + k0) * GE_MR, bp, boff,
            c + (gsize) i0 * ldc + j, ldc, MIN (GE_MR, m - i0), m0, m1, NULL, acc, FALSE);
    }
  }
}

/* ---- bf16 ------------------------------------------------------------- */

#define BF16_TARGET __attribute__((target ("avx512f,avx512bw,avx512vl,avx512bf16")))

/* What the bf16 and int8 kernels need besides their own instructions. */
static gboolean
avx512_bw_vl (void)
{
  __builtin_cpu_init ();
  return ge_gemm_packed_available () && __builtin_cpu_supports ("avx512bw")
      && __builtin_cpu_supports ("avx512vl");
}

gboolean
ge_gemm_bf16_available (void)
{
  static int state = -1;
  if (state < 0)
    state = avx512_bw_vl () && __builtin_cpu_supports ("avx512bf16") && !g_getenv ("GE_NO_BF16");
  return state;
}

#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* The K loop of the tiles on words (pairs or quads of K in a guint32):
 * b0 and b1, B's two 16-column vectors of word row kk, then ROW (r) for
 * the 8 rows of A; full panels load without masks and prefetch as
 * tile_8x32 does. */
#define WORD_K_LOOP(K, ROW) \
  if (m0 == 0xffff && m1 == 0xffff) { \
    for (int kk = 0; kk < (K); kk++) { \
      const guint32 *bk = b + boff[kk]; \
      const __m512i b0 = _mm512_loadu_si512 (bk), b1 = _mm512_loadu_si512 (bk + 16); \
      if (prefetch) { \
        _mm_prefetch ((const char *) (bk + 32), _MM_HINT_T0); \
        _mm_prefetch ((const char *) (bk + 47), _MM_HINT_T0); } \
      FOR_ROWS (ROW) \
      ap += GE_MR; } \
  } else { \
    for (int kk = 0; kk < (K); kk++) { \
      const guint32 *bk = b + boff[kk]; \
      const __m512i b0 = _mm512_maskz_loadu_epi32 (m0, bk); \
      const __m512i b1 = _mm512_maskz_loadu_epi32 (m1, bk + 16); \
      FOR_ROWS (ROW) \
      ap += GE_MR; } \
  }

/* A tile on words, as tile_8x32: @every[r] goes to the tiles of every K
 * slice (int8's scales), @first[r] to those of the first slice only (the
 * bias, int8's offsets); NULL: none.  @res (C's layout, NULL: none) is
 * added to the finished sums as they are stored (the last slice's).
 * @stream: C's rows are 64-byte aligned and are stored non-temporally where
 * the columns are full (word_gemm). */
typedef void (*WordTile) (int kw, const guint32 * ap, const guint32 * b, const int *boff,
    float *c, int ldc, int rows, __mmask16 m0, __mmask16 m1, const float *every,
    const float *first, gboolean accumulate, gboolean prefetch, const float *res,
    gboolean stream);

/* Row r's two 16-column vectors into C: past the caches where @stream (the
 * panel is then 64-byte aligned) and both are whole; masked otherwise. */
#define STORE_ROW(r, v0, v1) \
  if (stream && m0 == 0xffff && m1 == 0xffff) { \
    _mm512_stream_ps (c + (gsize) r * ldc, v0); \
    _mm512_stream_ps (c + (gsize) r * ldc + 16, v1); \
  } else { \
    _mm512_mask_storeu_ps (c + (gsize) r * ldc, m0, v0); \
    _mm512_mask_storeu_ps (c + (gsize) r * ldc + 16, m1, v1); }

/* ge_gemm_bf16 and ge_gemm_int8 over @kw words of K: slices of K (a B
 * panel of KC x NR words is 32 KiB, as the f32 one), panels of NR columns,
 * blocks of MR rows, @tile4 for a last block of 4 rows or fewer (a conv's
 * 12 or 3 output channels: half the dot products of @tile's); the slices
 * after the first add to C.  @stream: the last slice stores past the
 * caches where C's rows are aligned (see ge_gemm_int8). */
static void
word_gemm (WordTile tile, WordTile tile4, int m, int n, int kw, const guint32 * ap,
    const guint32 * b, const int *boff, float *c, int ldc, const float *every,
    const float *first, gboolean accumulate, const float *res, gboolean stream)
{
  /* only the last slice streams (the next slice reads back the others);
   * a C the call adds to is read anyway, and gains nothing */
  stream = stream && !accumulate && (guintptr) c % 64 == 0 && ldc % 16 == 0;
  const int slice = slice_len (kw);
  for (int k0 = 0; k0 < kw; k0 += slice) {
    const int kc = MIN (slice, kw - k0);
    const gboolean acc = accumulate || k0 > 0;
    for (int j = 0; j < n; j += GE_NR) {
      __mmask16 m0, m1;
      col_masks (MIN (GE_NR, n - j), &m0, &m1);
      for (int i0 = 0; i0 < m; i0 += GE_MR)
        (m - i0 <= 4 ? tile4 : tile) (kc, ap + ((gsize) (i0 / GE_MR) * kw + k0) * GE_MR,
            b + j, boff + k0,
            c + (gsize) i0 * ldc + j, ldc, MIN (GE_MR, m - i0), m0, m1,
            every ? every + i0 : NULL, k0 == 0 && first ? first + i0 : NULL, acc, i0 == 0,
            res && k0 + kc == kw ? res + (gsize) i0 * ldc + j : NULL, stream && k0 + kc == kw);
    }
  }
  if (stream)                   /* the streamed stores are weakly ordered */
    _mm_sfence ();
}

/* tile_8x32 with pairs: a_ broadcasts row r's pair, each vdpbf16ps adds
 * both of its products to 16 columns.  Rows from @nr (a constant where it
 * is inlined) on are left out. */
BF16_TARGET static inline __attribute__((always_inline)) void
tile_bf16_rows (const int nr, int kp, const guint32 * ap, const guint32 * b, const int *boff,
    float *c, int ldc, int rows, __mmask16 m0, __mmask16 m1, const float *bias,
    gboolean accumulate, gboolean prefetch, const float *res, gboolean stream)
{
  __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
#define INIT(r) \
  c##r##0 = _mm512_set1_ps (bias && r < rows ? bias[r] : 0.0f); \
  c##r##1 = c##r##0; \
  if (accumulate && r < rows) { \
    c##r##0 = _mm512_add_ps (c##r##0, _mm512_maskz_loadu_ps (m0, c + (gsize) r * ldc)); \
    c##r##1 = _mm512_add_ps (c##r##1, _mm512_maskz_loadu_ps (m1, c + (gsize) r * ldc + 16)); }
  FOR_ROWS (INIT)
#undef INIT
#define ROW(r) if (r < nr) { const __m512bh a_ = (__m512bh) _mm512_set1_epi32 ((int) ap[r]); \
        c##r##0 = _mm512_dpbf16_ps (c##r##0, a_, (__m512bh) b0); \
        c##r##1 = _mm512_dpbf16_ps (c##r##1, a_, (__m512bh) b1); }
  WORD_K_LOOP (kp, ROW)
#undef ROW
#define STORE(r) \
  if (r < rows) { \
    if (res) { \
      c##r##0 = _mm512_add_ps (_mm512_maskz_loadu_ps (m0, res + (gsize) r * ldc), c##r##0); \
      c##r##1 = _mm512_add_ps (_mm512_maskz_loadu_ps (m1, res + (gsize) r * ldc + 16), c##r##1); } \
    STORE_ROW (r, c##r##0, c##r##1) }
  FOR_ROWS (STORE)
#undef STORE
}

BF16_TARGET static void
tile_bf16 (int kp, const guint32 * ap, const guint32 * b, const int *boff, float *c,
    int ldc, int rows, __mmask16 m0, __mmask16 m1, const float *every, const float *bias,
    gboolean accumulate, gboolean prefetch, const float *res, gboolean stream)
{
  tile_bf16_rows (GE_MR, kp, ap, b, boff, c, ldc, rows, m0, m1, bias, accumulate, prefetch, res,
      stream);
}

BF16_TARGET static void
tile_bf16_4 (int kp, const guint32 * ap, const guint32 * b, const int *boff, float *c,
    int ldc, int rows, __mmask16 m0, __mmask16 m1, const float *every, const float *bias,
    gboolean accumulate, gboolean prefetch, const float *res, gboolean stream)
{
  tile_bf16_rows (4, kp, ap, b, boff, c, ldc, rows, m0, m1, bias, accumulate, prefetch, res,
      stream);
}

gsize
ge_gemm_bf16_a_size (int m, int kp)
{
  return (gsize) ((m + GE_MR - 1) / GE_MR) * GE_MR * kp;
}

void
ge_gemm_bf16 (int m, int n, int kp, const guint32 * ap, const guint32 * b, const int *boff,
    float *c, int ldc, const float *bias, gboolean accumulate, gboolean stream)
{
  word_gemm (tile_bf16, tile_bf16_4, m, n, kp, ap, b, boff, c, ldc, NULL, bias, accumulate,
      NULL, stream);
}

/* ---- int8 (AVX512-VNNI) ------------------------------------------------ */

#define INT8_TARGET __attribute__((target ("avx512f,avx512bw,avx512vl,avx512vnni")))

/* No AVX512-BF16 needed: VNNI alone (Cascade Lake, Ice Lake) runs the int8
 * convs, and the rest of an int8 run is then f32 (GE_NO_BF16 shows it). */
gboolean
ge_gemm_int8_available (void)
{
  static int state = -1;
  if (state < 0)
    state = avx512_bw_vl () && __builtin_cpu_supports ("avx512vnni") && !g_getenv ("GE_NO_INT8");
  return state;
}

/* tile_bf16 with quads: vpdpbusd adds the four products of B's unsigned
 * bytes and A's signed ones to an int32 of 16 columns; the epilogue turns
 * the sums into f32, c = sum * scale[r] + offset[r] (+ c). */
INT8_TARGET static inline __attribute__((always_inline)) void
tile_int8_rows (const int nr, int kq, const guint32 * ap, const guint32 * b, const int *boff,
    float *c, int ldc, int rows, __mmask16 m0, __mmask16 m1, const float *scale,
    const float *offset, gboolean accumulate, gboolean prefetch, const float *res,
    gboolean stream)
{
  __m512i c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
#define INIT(r) c##r##0 = c##r##1 = _mm512_setzero_si512 ();
  FOR_ROWS (INIT)
#undef INIT
  /* vpdpbusd written out (vnni.h) */
#define ROW(r) if (r < nr) { const __m512i a_ = _mm512_set1_epi32 ((int) ap[r]); \
        GE_DPBUSD (c##r##0, b0, a_); \
        GE_DPBUSD (c##r##1, b1, a_); }
  WORD_K_LOOP (kq, ROW)
#undef ROW
#define STORE(r) \
  if (r < rows) { \
    const __m512 s_ = _mm512_set1_ps (scale[r]); \
    __m512 o0 = _mm512_set1_ps (offset ? offset[r] : 0.0f), o1 = o0; \
    if (accumulate) { \
      o0 = _mm512_add_ps (o0, _mm512_maskz_loadu_ps (m0, c + (gsize) r * ldc)); \
      o1 = _mm512_add_ps (o1, _mm512_maskz_loadu_ps (m1, c + (gsize) r * ldc + 16)); } \
    __m512 v0 = _mm512_fmadd_ps (_mm512_cvtepi32_ps (c##r##0), s_, o0); \
    __m512 v1 = _mm512_fmadd_ps (_mm512_cvtepi32_ps (c##r##1), s_, o1); \
    if (res) { \
      v0 = _mm512_add_ps (_mm512_maskz_loadu_ps (m0, res + (gsize) r * ldc), v0); \
      v1 = _mm512_add_ps (_mm512_maskz_loadu_ps (m1, res + (gsize) r * ldc + 16), v1); } \
    STORE_ROW (r, v0, v1) }
  FOR_ROWS (STORE)
#undef STORE
}

INT8_TARGET static void
tile_int8 (int kq, const guint32 * ap, const guint32 * b, const int *boff, float *c,
    int ldc, int rows, __mmask16 m0, __mmask16 m1, const float *scale, const float *offset,
    gboolean accumulate, gboolean prefetch, const float *res, gboolean stream)
{
  tile_int8_rows (GE_MR, kq, ap, b, boff, c, ldc, rows, m0, m1, scale, offset, accumulate,
      prefetch, res, stream);
}

INT8_TARGET static void
tile_int8_4 (int kq, const guint32 * ap, const guint32 * b, const int *boff, float *c,
    int ldc, int rows, __mmask16 m0, __mmask16 m1, const float *scale, const float *offset,
    gboolean accumulate, gboolean prefetch, const float *res, gboolean stream)
{
  tile_int8_rows (4, kq, ap, b, boff, c, ldc, rows, m0, m1, scale, offset, accumulate,
      prefetch, res, stream);
}

#undef STORE_ROW
#undef WORD_K_LOOP
#undef FOR_ROWS

void
ge_gemm_int8 (int m, int n, int kq, const guint32 * ap, const guint32 * b, const int *boff,
    float *c, int ldc, const float *scale, const float *offset, gboolean accumulate,
    const float *res, gboolean stream)
{
  word_gemm (tile_int8, tile_int8_4, m, n, kq, ap, b, boff, c, ldc, scale, offset, accumulate,
      res, stream);
}

/* Word 2i of the result is lo[i], word 2i + 1 hi[i]: the two halves of
 * vcvtne2ps2bf16's result interleaved. */
BF16_TARGET static void
pairs_bf16_avx512 (const float *lo, const float *hi, int n, guint32 * dst)
{
  static const short idx_[32] = { 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
    8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
  };
  const __m512i idx = _mm512_loadu_si512 (idx_);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16) ((1u << (n - i)) - 1);
    const __m512 a = _mm512_maskz_loadu_ps (m, lo + i);
    const __m512 b = hi ? _mm512_maskz_loadu_ps (m, hi + i) : _mm512_setzero_ps ();
    const __m512i v = (__m512i) _mm512_cvtne2ps_pbh (b, a);
    _mm512_mask_storeu_epi32 (dst + i, m, _mm512_permutexvar_epi16 (idx, v));
  }
}

void
ge_bf16_pairs (const float *lo, const float *hi, int n, guint32 * dst)
{
  if (ge_gemm_bf16_available ()) {
    pairs_bf16_avx512 (lo, hi, n, dst);
    return;
  }
  for (int i = 0; i < n; i++)
    dst[i] = ge_bf16_pair (lo[i], hi ? hi[i] : 0.0f);
}

void
ge_gemm_pack_a16 (const void *a, GeDType dtype, int m, int k0, int k, gsize lda, float *ap)
{
  if (ge_gemm_packed_available ())
    pack_a16_avx512 (a, dtype, m, k0, k, lda, ap);
  else
    pack_a16_generic (a, dtype, m, k0, k, lda, ap);
}

__attribute__((target ("avx512f")))
static void
half_to_f32_avx512 (const guint8 * src, GeDType dtype, gsize n, float *dst)
{
  for (gsize i = 0; i < n; i += 16) {
    const int cnt = (int) MIN (16, n - i);
    const __m512 v = load16 (src + 2 * i, dtype, cnt);
    _mm512_mask_storeu_ps (dst + i, (__mmask16) ((1u << cnt) - 1), v);
  }
}

void
ge_half_to_f32 (const void *src, GeDType dtype, gsize n, float *dst)
{
  if (dtype == GE_DTYPE_F32)
    memcpy (dst, src, sizeof (float) * n);
  else if (ge_gemm_packed_available ())
    half_to_f32_avx512 (src, dtype, n, dst);
  else
    for (gsize i = 0; i < n; i++)
      dst[i] = half_at (src, dtype, i);
}

#else

gboolean
ge_gemm_packed_available (void)
{
  return FALSE;
}

void
ge_gemm_pack_a16 (const void *a, GeDType dtype, int m, int k0, int k, gsize lda, float *ap)
{
  pack_a16_generic (a, dtype, m, k0, k, lda, ap);
}

void
ge_half_to_f32 (const void *src, GeDType dtype, gsize n, float *dst)
{
  if (dtype == GE_DTYPE_F32)
    memcpy (dst, src, sizeof (float) * n);
  else
    for (gsize i = 0; i < n; i++)
      dst[i] = half_at (src, dtype, i);
}

void
ge_gemm_packed16 (int m, int n, int k, const void *a, GeDType dtype, gsize lda,
    const float *b, const int *boff, float *c, int ldc, const float *bias, gboolean accumulate,
    float *scratch)
{
  g_assert_not_reached ();
}

void
ge_gemm_packed_bt16 (int m, int n, int k, const float *ap, const void *w, GeDType dtype,
    gsize ldw, float *c, int ldc, gboolean accumulate, float *bp)
{
  g_assert_not_reached ();
}

void
ge_gemm_packed (int m, int n, int k, const float *ap, const float *b, const int *boff,
    float *c, int ldc, const float *bias, gboolean accumulate)
{
  g_assert_not_reached ();
}

gboolean
ge_gemm_bf16_available (void)
{
  return FALSE;
}

gboolean
ge_gemm_int8_available (void)
{
  return FALSE;
}

void
ge_gemm_int8 (int m, int n, int kq, const guint32 * ap, const guint32 * b, const int *boff,
    float *c, int ldc, const float *scale, const float *offset, gboolean accumulate,
    const float *res, gboolean stream)
{
  g_assert_not_reached ();
}

gsize
ge_gemm_bf16_a_size (int m, int kp)
{
  return (gsize) ((m + GE_MR - 1) / GE_MR) * GE_MR * kp;
}

void
ge_gemm_bf16 (int m, int n, int kp, const guint32 * ap, const guint32 * b, const int *boff,
    float *c, int ldc, const float *bias, gboolean accumulate, gboolean stream)
{
  g_assert_not_reached ();
}

void
ge_bf16_pairs (const float *lo, const float *hi, int n, guint32 * dst)
{
  for (int i = 0; i < n; i++)
    dst[i] = ge_bf16_pair (lo[i], hi ? hi[i] : 0.0f);
}

#endif
