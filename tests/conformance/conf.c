#include "conf.h"

#include <math.h>
#include <stdio.h>

void
conf_mark (Conf * c, const char *key)
{
  if (c->used && !g_hash_table_contains (c->used, key))
    g_hash_table_add (c->used, g_strdup (key));
}

void
conf_report_unused (Conf * c)
{
  if (!c->used)
    return;
  for (guint i = 0; i < ge_safetensors_n_tensors (c->io); i++) {
    const GeStTensor *t = ge_safetensors_nth (c->io, i);
    if (!g_hash_table_contains (c->used, t->name)) {
      printf ("unchecked output: %s\n", t->name);
      c->n_failed++;
    }
  }
}

float *
conf_try_load_f32 (Conf * c, const char *key, gsize * n)
{
  const GeStTensor *t = ge_safetensors_find (c->io, key);
  if (!t)
    return NULL;
  conf_mark (c, key);
  float *d = g_new (float, MAX (t->n_elements, 1));
  ge_st_tensor_to_f32 (t, d);
  if (n)
    *n = t->n_elements;
  return d;
}

float *
conf_load_f32 (Conf * c, const char *key, gsize * n)
{
  float *d = conf_try_load_f32 (c, key, n);
  if (!d) {
    printf ("%-48s MISSING in io.safetensors\n", key);
    c->n_failed++;
  }
  return d;
}

double
conf_check (Conf * c, const char *key, const float *got, gsize n)
{
  const GeStTensor *t = ge_safetensors_find (c->io, key);
  conf_mark (c, key);
  if (!t) {
    printf ("%-48s MISSING in io.safetensors\n", key);
    c->n_failed++;
    return INFINITY;
  }
  if (t->n_elements != n) {
    printf ("%-48s SIZE MISMATCH: got %" G_GSIZE_FORMAT ", reference %"
        G_GSIZE_FORMAT "\n", key, n, t->n_elements);
    c->n_failed++;
    return INFINITY;
  }
  double *ref = g_new (double, MAX (n, 1));
  ge_st_tensor_to_f64 (t, ref);
  double maxref = 0, maxerr = 0;
  for (gsize i = 0; i < n; i++) {
    maxref = fmax (maxref, fabs (ref[i]));
    double e = fabs ((double) got[i] - ref[i]);
    if (!(e <= maxerr))         /* also catches NaN */
      maxerr = isnan (e) ? INFINITY : e;
  }
  g_free (ref);
  double rel = maxref > 0 ? maxerr / maxref : maxerr;
  gboolean ok = rel <= CONF_TOL;
  printf ("%-48s max rel err %.3e %s\n", key, rel, ok ? "ok" : "FAIL");
  c->n_checked++;
  if (!ok)
    c->n_failed++;
  if (!(rel <= c->worst))
    c->worst = rel;
  return rel;
}

void
conf_check_ints (Conf * c, const char *key, const gint64 * got, gsize n)
{
  const GeStTensor *t = ge_safetensors_find (c->io, key);
  conf_mark (c, key);
  if (!t || t->n_elements != n) {
    printf ("%-48s %s\n", key, t ? "SIZE MISMATCH" : "MISSING in io.safetensors");
    c->n_failed++;
    return;
  }
  gsize bad = 0;
  for (gsize i = 0; i < n; i++)
    if (ge_st_tensor_get_int (t, i) != got[i])
      bad++;
  printf ("%-48s %s (%" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " differ)\n", key,
      bad ? "FAIL" : "exact", bad, n);
  c->n_checked++;
  if (bad) {
    c->n_failed++;
    c->worst = INFINITY;
  }
}

JsonObject *
conf_read_json (Conf * c, const char *file, JsonParser ** parser)
{
  char *path = g_build_filename (c->dir, file, NULL);
  GError *err = NULL;
  *parser = json_parser_new ();
  if (!json_parser_load_from_file (*parser, path, &err)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (*parser))) {
    printf ("%s: %s\n", path, err ? err->message : "not a JSON object");
    g_clear_error (&err);
    g_clear_object (parser);
    g_free (path);
    c->n_failed++;
    return NULL;
  }
  g_free (path);
  return json_node_get_object (json_parser_get_root (*parser));
}
