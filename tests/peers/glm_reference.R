#!/usr/bin/env Rscript
## Regenerates the R-based GLM reference fixtures of natgrad's test suite.
##
##   Rscript tests/peers/glm_reference.R tests/fixtures/glm
##
## Needs only base R (Debian: r-base-core); uses r-cran-sandwich, when installed,
## to cross-check the explicitly computed HC0 sandwich. Every case is fitted with
## stats::glm on a real data set shipped with R's `datasets` package, converged to
## machine precision (epsilon = 1e-15), checked (score, separation-free, sandwich),
## and written as NAME.csv (label, model matrix without the intercept, weights,
## offset) and NAME.json (the peer's estimates). The CSV is then read back and the
## log-likelihood and deviance are recomputed from its numbers alone.
##
## Field definitions (see tests/fixtures/glm/README.md):
##   std_errors        sqrt(diag(summary(fit)$cov.scaled))
##   robust_std_errors HC0 sandwich F^-1 B F^-1, F = X' diag(w mu.eta^2 / V) X,
##                     B = sum_i (w_i (y_i - mu_i) / V_i * mu.eta_i)^2 x_i x_i'
##   log_likelihood    logLik(fit); aic AIC(fit); bic BIC(fit) (n = nobs(fit), the
##                     number of rows with non-zero weight)

args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else file.path("tests", "fixtures", "glm")
dir.create(outdir, recursive = TRUE, showWarnings = FALSE)

ctl <- glm.control(epsilon = 1e-15, maxit = 500)
peer <- sprintf("R %s.%s glm", R.version$major, R.version$minor)

num <- function(x) {
  stopifnot(all(is.finite(x)))
  sprintf("%.17g", x)
}
jstr <- function(s) paste0("\"", gsub("\"", "\\\\\"", gsub("\\\\", "\\\\\\\\", s)), "\"")
jarr_num <- function(x) paste0("[", paste(num(x), collapse = ", "), "]")
jarr_str <- function(x) paste0("[", paste(jstr(x), collapse = ", "), "]")
sanitise <- function(s) gsub("[^A-Za-z0-9_.]", "_", s)

write_json <- function(path, fields) {
  lines <- character(0)
  for (k in names(fields)) {
    v <- fields[[k]]
    txt <- if (is.null(v)) "null"
      else if (is.logical(v)) tolower(as.character(v))
      else if (inherits(v, "jint")) as.character(as.integer(v))
      else if (inherits(v, "jarrstr")) jarr_str(unclass(v))
      else if (inherits(v, "jarrnum")) jarr_num(unclass(v))
      else if (is.character(v)) jstr(v)
      else num(v)
    lines <- c(lines, paste0("  ", jstr(k), ": ", txt))
  }
  writeLines(c("{", paste(lines, collapse = ",\n"), "}"), path)
}
jint <- function(x) structure(x, class = "jint")
jarrnum <- function(x) structure(unname(as.numeric(x)), class = "jarrnum")
jarrstr <- function(x) structure(unname(as.character(x)), class = "jarrstr")

## Separation check (Albert & Anderson / Santner & Duffy): the binomial MLE exists
## iff there is no direction b != 0 with x_i'b >= 0 for every row with a success,
## x_i'b <= 0 for every row with a failure (x_i'b = 0 for a row with both). Base R
## has no LP solver, so this script only requires convergence, a zero score and an
## invertible Fisher matrix, and prints the fitted-mean range and the condition
## number; multinomial_reference.py (run after this script) re-verifies every
## fixture and solves that LP exactly (scipy HiGHS).

fit_case <- function(name, dataset, source, formula, family, data,
                     weights = NULL, offset = NULL, note = "") {
  ftext <- paste(deparse(formula, width.cutoff = 500L), collapse = " ")
  if (!is.null(offset)) ftext <- paste0(ftext, " + offset(", deparse(offset), ")")
  if (!is.null(weights)) ftext <- paste0(ftext, ", weights = ", deparse(weights))
  fit <- eval(bquote(glm(.(formula), family = .(family), data = data,
                         weights = .(weights), offset = .(offset), control = ctl)))
  if (!fit$converged) stop(name, ": glm did not converge")
  ## glm's IRLS stops on the relative change of the deviance, which is quadratic
  ## in the step, so the last step may still be ~1e-8 relative; and fit$weights
  ## (hence summary()$cov.scaled) are those of the iterate before the last step.
  ## Fisher scoring converges only linearly for non-canonical links (gamma/log on
  ## trees stops ~4e-9 relative from the MLE). Polish: restart from the estimate
  ## with maxit = 1 (one scoring step each; "did not converge" is expected there)
  ## until the coefficients stop moving, so that coefficients and covariance are
  ## at the MLE to rounding.
  iter0 <- fit$iter
  ## With an offset, glm() refits the intercept-only model for null.deviance with
  ## the caller's control; the maxit = 1 restarts below would leave it one step
  ## short, so keep the fully converged first fit's value.
  null_dev <- fit$null.deviance
  for (k in 1:50) {
    b0 <- coef(fit)
    fit <- suppressWarnings(eval(bquote(glm(.(formula), family = .(family), data = data,
                           weights = .(weights), offset = .(offset),
                           control = glm.control(epsilon = 1e-15, maxit = 1),
                           start = .(unname(b0))))))
    step <- max(abs(coef(fit) - b0) / pmax(abs(b0), 1e-300))
    polish_steps <- k
    if (step < 1e-14) break
  }
  if (step > 1e-13) stop(name, ": polishing did not settle, last step ", step)
  fit$iter <- iter0
  fit$null.deviance <- null_dev
  X <- model.matrix(fit)
  stopifnot(colnames(X)[1] == "(Intercept)", fit$rank == ncol(X))
  y <- fit$y
  n <- nrow(X)
  w <- fit$prior.weights
  off <- if (is.null(offset)) rep(0, n) else fit$offset
  stopifnot(length(off) == n)
  fam <- fit$family
  beta <- coef(fit)
  eta <- drop(X %*% beta) + off
  stopifnot(max(abs(eta - fit$linear.predictors)) < 1e-10 * (1 + max(abs(eta))))
  mu <- fam$linkinv(eta)
  V <- fam$variance(mu)
  dmu <- fam$mu.eta(eta)

  ## Score at the MLE (unit dispersion) and its size relative to the sum of the
  ## absolute per-row contributions.
  u <- w * (y - mu) / V * dmu
  score <- drop(crossprod(X, u))
  scale <- drop(crossprod(abs(X), abs(u)))
  rel_score <- max(abs(score) / scale)
  if (rel_score > 1e-9) stop(name, ": score not zero, relative ", rel_score)

  ## Expected Fisher (unit dispersion) and HC0 sandwich.
  Fm <- crossprod(X, X * (w * dmu^2 / V))
  Finv <- solve(Fm)
  B <- crossprod(X * u)
  robust <- Finv %*% B %*% Finv
  kappa <- kappa(Fm / sqrt(outer(diag(Fm), diag(Fm))), exact = TRUE)
  if (requireNamespace("sandwich", quietly = TRUE)) {
    hc0 <- sandwich::vcovHC(fit, type = "HC0")
    d <- max(abs(hc0 - robust) / sqrt(outer(diag(robust), diag(robust))))
    if (d > 1e-8) stop(name, ": sandwich::vcovHC disagrees, ", d)
  }
  se <- sqrt(diag(summary(fit)$cov.scaled))
  stopifnot(max(abs(se^2 / diag(Finv) - summary(fit)$dispersion)) < 1e-8 * summary(fit)$dispersion)

  ## CSV: y, model matrix without intercept, w, offset.
  xnames <- sanitise(colnames(X)[-1])
  stopifnot(!anyDuplicated(xnames), !any(xnames %in% c("y", "w", "offset")))
  tab <- data.frame(y = y, X[, -1, drop = FALSE], check.names = FALSE)
  colnames(tab) <- c("y", xnames)
  has_w <- !is.null(weights)
  has_off <- !is.null(offset)
  if (has_w) tab$w <- w
  if (has_off) tab$offset <- off
  csv <- file.path(outdir, paste0(name, ".csv"))
  body <- apply(tab, 1, function(r) paste(num(r), collapse = ","))
  writeLines(c(paste(colnames(tab), collapse = ","), body), csv)

  linkname <- fam$link
  famname <- switch(fam$family, binomial = "binomial", poisson = "poisson",
                    gaussian = "gaussian", Gamma = "gamma", stop("family"))
  ll <- logLik(fit)
  write_json(file.path(outdir, paste0(name, ".json")), list(
    dataset = dataset, source = source,
    formula = ftext,
    peer = peer, family = famname, link = linkname, intercept = TRUE,
    weight_column = if (has_w) "w" else NULL,
    offset_column = if (has_off) "offset" else NULL,
    n_obs = jint(n),
    names = jarrstr(c("(Intercept)", xnames)),
    coefficients = jarrnum(beta), std_errors = jarrnum(se),
    robust_std_errors = jarrnum(sqrt(diag(robust))),
    log_likelihood = as.numeric(ll), deviance = fit$deviance,
    null_deviance = fit$null.deviance, aic = AIC(fit), bic = BIC(fit),
    dispersion = summary(fit)$dispersion, df_residual = jint(fit$df.residual)))

  ## Read the CSV back and recompute log-likelihood and deviance from its numbers
  ## with the textbook densities (not family$aic / dev.resids).
  back <- read.csv(csv, check.names = FALSE)
  stopifnot(identical(colnames(back), colnames(tab)), nrow(back) == n)
  Xb <- cbind(1, as.matrix(back[, xnames, drop = FALSE]))
  wb <- if (has_w) back$w else rep(1, n)
  ob <- if (has_off) back$offset else rep(0, n)
  mub <- fam$linkinv(drop(Xb %*% beta) + ob)
  yb <- back$y
  disp_ml <- fit$deviance / sum(wb)
  ll2 <- switch(famname,
    binomial = sum(lchoose(wb, wb * yb) + wb * yb * log(mub) + wb * (1 - yb) * log1p(-mub)),
    poisson = sum(wb * (yb * log(mub) - mub - lgamma(yb + 1))),
    gaussian = {
      s2 <- sum(wb * (yb - mub)^2) / n
      -n / 2 * (log(2 * pi * s2) + 1)
    },
    gamma = {
      k <- 1 / disp_ml
      sum(wb * (k * log(k * yb / mub) - k * yb / mub - log(yb) - lgamma(k)))
    })
  xlogy <- function(a, b) ifelse(a == 0, 0, a * log(b))
  dev2 <- switch(famname,
    binomial = 2 * sum(wb * (xlogy(yb, yb / mub) + xlogy(1 - yb, (1 - yb) / (1 - mub)))),
    poisson = 2 * sum(wb * (xlogy(yb, yb / mub) - (yb - mub))),
    gaussian = sum(wb * (yb - mub)^2),
    gamma = 2 * sum(wb * (-log(yb / mub) + (yb - mub) / mub)))
  rel <- function(a, b) abs(a - b) / max(1, abs(b))
  if (rel(ll2, as.numeric(ll)) > 1e-10 || rel(dev2, fit$deviance) > 1e-10)
    stop(name, ": read-back check failed: ll ", ll2, " vs ", ll, ", dev ", dev2, " vs ", fit$deviance)

  cat(sprintf("%-34s n=%4d p=%d iter=%3d+%d |score|rel=%.1e kappa=%.3g min/max mu=%.3g/%.3g ll=%.10g\n",
              name, n, ncol(X), fit$iter, polish_steps, rel_score, kappa, min(mu), max(mu), as.numeric(ll)))
  data.frame(name = name, dataset = dataset, source = source,
             formula = ftext, family = paste0(famname, "/", linkname), n = n, p = ncol(X),
             iter = fit$iter, rel_score = rel_score, note = note)
}

## ---- data ---------------------------------------------------------------
inf <- datasets::infert
levels(inf$education) <- c("0to5yrs", "6to11yrs", "12plusyrs")  # was 0-5yrs, 6-11yrs, 12+ yrs
f_inf <- case ~ education + age + parity + induced + spontaneous

eso <- datasets::esoph
eso$agegp <- as.integer(eso$agegp)   # codes 1..6 = 25-34 .. 75+
eso$alcgp <- as.integer(eso$alcgp)   # codes 1..4 = 0-39 .. 120+ g/day
eso$tobgp <- as.integer(eso$tobgp)   # codes 1..4 = 0-9 .. 30+ g/day

sb <- as.data.frame(datasets::Seatbelts)   # monthly UK 1969-1984

cases <- list(
  fit_case("binomial_logit_infert", "infert", "R datasets::infert", f_inf,
           binomial("logit"), inf,
           note = "education levels renamed 0to5yrs/6to11yrs/12plusyrs; treatment contrasts"),
  fit_case("binomial_probit_infert", "infert", "R datasets::infert", f_inf,
           binomial("probit"), inf, note = "as binomial_logit_infert"),
  fit_case("binomial_cloglog_infert", "infert", "R datasets::infert", f_inf,
           binomial("cloglog"), inf, note = "as binomial_logit_infert"),
  fit_case("binomial_logit_mtcars", "mtcars", "R datasets::mtcars", am ~ hp + wt,
           binomial("logit"), datasets::mtcars),
  fit_case("binomial_logit_esoph_weighted", "esoph", "R datasets::esoph",
           ncases/(ncases + ncontrols) ~ agegp + alcgp + tobgp, binomial("logit"), eso,
           weights = quote(ncases + ncontrols),
           note = "y = ncases/(ncases+ncontrols), w = ncases+ncontrols; agegp/alcgp/tobgp as integer codes 1..k"),
  fit_case("poisson_log_seatbelts_offset", "Seatbelts", "R datasets::Seatbelts",
           DriversKilled ~ PetrolPrice + law, poisson("log"), sb, offset = quote(log(kms)),
           note = "offset = log(kms), kms = distance driven (exposure)"),
  fit_case("poisson_log_warpbreaks", "warpbreaks", "R datasets::warpbreaks",
           breaks ~ wool + tension, poisson("log"), datasets::warpbreaks,
           note = "factors, treatment contrasts"),
  fit_case("gaussian_identity_mtcars", "mtcars", "R datasets::mtcars", mpg ~ wt + hp + qsec,
           gaussian("identity"), datasets::mtcars),
  fit_case("gamma_inverse_trees", "trees", "R datasets::trees", Volume ~ Girth + Height,
           Gamma("inverse"), datasets::trees),
  fit_case("gamma_log_trees", "trees", "R datasets::trees", Volume ~ Girth + Height,
           Gamma("log"), datasets::trees)
)
summary_tab <- do.call(rbind, cases)
cat(R.version.string, "\n")
for (i in seq_len(nrow(summary_tab)))
  with(summary_tab[i, ], cat(sprintf("| %s | %s | %s | `%s` | %s | %d | %d |\n",
                                    name, dataset, source, formula, family, n, p)))
