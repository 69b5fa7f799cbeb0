/* ge-sampler-private.h: what ge-sampler.c shares with the per-class files
 * (sampler_*.c).  Not installed; not API. */
#pragma once

#include "ge-sampler.h"
#include "ge-scheduler.h"
#include "ge-scheduler-private.h"

G_BEGIN_DECLS

/* Everything the supported classes read from a config, with diffusers'
 * per-class defaults filled in before the keys are read. */
typedef struct {
  GeSchedulerConfig base;       /* betas, prediction, spacing, offset, set_alpha_to_one */
  /* PNDM */
  gboolean skip_prk_steps;
  /* Euler, LMS, DPM++ */
  gboolean use_karras_sigmas;
  gboolean final_sigma_min;     /* final_sigmas_type "sigma_min" (else "zero") */
  /* Euler */
  gboolean log_linear;          /* interpolation_type */
  gboolean continuous;          /* timestep_type */
  gboolean has_sigma_min, has_sigma_max;
  double sigma_min, sigma_max;
  /* DPM++ */
  int solver_order;
  gboolean heun;                /* solver_type (else midpoint) */
  gboolean lower_order_final, euler_at_final;
  double lambda_min_clipped;
} GeSamplerConfig;

typedef struct _GeSamplerClass GeSamplerClass;

struct _GeSampler {
  const GeSamplerClass *klass;
  char *source;                 /* the config's file, for messages */
  GeSamplerConfig cfg;
  GeScheduler *base;            /* betas, alphas_cumprod; the DDPM / DDIM steps */
  float eta;
  int num_inference_steps;      /* N of set_timesteps; 0 before */
  int n_calls;
  float *timesteps;             /* [n_calls] what the model gets */
  gint64 *itimesteps;           /* [n_calls] integer timesteps (not Euler / LMS) */
  float *sigmas;                /* [n_sigmas] or NULL */
  int n_sigmas;
  float init_noise_sigma;
  double *lms_coefs;            /* [n_calls][4] (LMS) */
};

/* Per-run history buffers: PNDM the last 4 outputs and the warm-up sample,
 * DPM++ the last data prediction, LMS the last 4 derivatives. */
#define GE_SAMPLER_RUN_BUFS 6

struct _GeSamplerRun {
  const GeSampler *s;
  gsize n;
  int counter;                  /* steps taken in this run */
  int n_hist;                   /* valid history entries */
  float *buf[GE_SAMPLER_RUN_BUFS];
};

struct _GeSamplerClass {
  const char *class_name;
  const char *short_name;
  GeSchedulerKind base_kind;    /* DDIM for the classes not DDPM */
  /* the __init__ parameters of the diffusers class, NULL-terminated */
  const char *const *keys;
  /* Fills the class's diffusers defaults into @cfg (base already holds the
   * shared ones). */
  void (*defaults) (GeSamplerConfig *cfg);
  /* Refuses combinations we do not run (after every key was read). */
  gboolean (*check) (const GeSamplerConfig *cfg, const char *source,
      GError **error);
  gboolean (*set_timesteps) (GeSampler *s, int N, GError **error);
  int n_bufs;                   /* history buffers a run needs */
  gboolean (*needs_noise) (const GeSampler *s, int i);
  /* returns whether @x0 was written (x0 may be NULL) */
  gboolean (*step) (GeSamplerRun *r, int i, const float *mo, const float *x,
      const float *noise, float *prev, float *x0);
};

extern const GeSamplerClass ge_sampler_ddpm_class, ge_sampler_ddim_class,
    ge_sampler_pndm_class, ge_sampler_euler_class,
    ge_sampler_euler_ancestral_class, ge_sampler_dpmpp_class,
    ge_sampler_lms_class;

/* sqrt((1 - a) / a) of each alphas_cumprod entry, in float32 as torch
 * computes (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5). */
void ge_sampler_train_sigmas (const GeSampler *s, float *out);
/* numpy.interp (x, arange (T), fp) for one x, in double. */
double ge_sampler_interp (double x, const float *fp, int T);
/* Karras et al.'s rho = 7 schedule between sigma_max and sigma_min, n
 * values in double (diffusers' _convert_to_karras). */
void ge_sampler_karras (double sigma_min, double sigma_max, int n, double *out);
/* diffusers' _sigma_to_t: the fractional timestep of @sigma by linear
 * interpolation in log sigma over @log_sigmas [T] (float32 logs). */
double ge_sampler_sigma_to_t (double sigma, const float *log_sigmas, int T);
/* The same for @n sigmas against the training sigmas @train [T], as the
 * float32 timesteps @ts (Euler's and LMS's Karras schedules). */
void ge_sampler_sigmas_to_t (const double *sigmas, int n, const float *train, int T,
    float *ts);
/* Timesteps of Euler / Euler ancestral / LMS (float32, descending, N). */
gboolean ge_sampler_sigma_spacing (const GeSampler *s, int N, float *ts,
    GError **error);

/* Euler / LMS init_noise_sigma: the largest sigma, sqrt (max^2 + 1) with
 * "leading" spacing. */
void ge_sampler_set_init_sigma (GeSampler *s);

#define GE_SAMPLER_FAIL(error, code, source, ...) do { \
    char *m_ = g_strdup_printf (__VA_ARGS__); \
    g_set_error (error, GE_ERROR, code, "%s: %s", source, m_); \
    g_free (m_); return FALSE; } while (0)

G_END_DECLS
