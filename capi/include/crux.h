/* crux's C ABI: compiled log-densities of crux problems, for other
 * samplers (nuts-rs, BridgeStan-style callers, Python through ctypes).
 * Link with -lcrux_capi. Every function is thread-safe on distinct
 * handles; one handle evaluates on one thread at a time. */
#ifndef CRUX_H
#define CRUX_H
#include <stddef.h>
#include <stdint.h>

typedef struct crux_model crux_model;

/* A sample problem's log-density ("quickstart", "gauss100", "bpinn"),
 * its data drawn from `seed`, its likelihood weighted by
 * `likelihood_scale` (> 0), compiled with Cranelift. NULL on failure:
 * crux_last_error() says why. */
crux_model *crux_model_new(const char *problem, uint64_t seed, double likelihood_scale);

/* Entries of the position. */
size_t crux_model_dim(const crux_model *m);

/* log p(theta); writes the gradient into grad (both `dim` entries).
 * Returns NaN on failure (crux_last_error() says why). */
double crux_logp_grad(crux_model *m, const double *theta, double *grad);

/* The model's parameters at their initial values (`dim` entries). A
 * constrained parameter (positive, bounded, ordered) enters the position
 * unconstrained (e.g. ln x), as the sampler moves it; the log-density
 * includes the transform's log-Jacobian. */
void crux_model_initial(const crux_model *m, double *theta);

/* Frees a model (NULL is ignored). */
void crux_model_free(crux_model *m);

/* The calling thread's last error message, or NULL; valid until the
 * thread's next crux call. */
const char *crux_last_error(void);

#endif
