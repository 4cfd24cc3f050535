#!/usr/bin/env Rscript
## Regenerates the reference fixtures of the quasi families, the negative binomial
## (MASS::glm.nb and a fixed theta) and the Wald intervals (confint.default):
##
##   LC_ALL=C Rscript tests/peers/glm_families_reference.R tests/fixtures/glm
##
## Needs R with MASS (Debian: r-base-core, r-cran-mass). Each fit is converged far
## beyond R's defaults and then polished (below), so that R's own stopping rule does
## not limit the comparison. Field definitions: tests/fixtures/glm/README.md.
suppressPackageStartupMessages(library(MASS))

args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else file.path("tests", "fixtures", "glm")
dir.create(outdir, recursive = TRUE, showWarnings = FALSE)
peer <- sprintf("R %s.%s, MASS %s", R.version$major, R.version$minor, packageVersion("MASS"))

num <- function(x) {
  stopifnot(all(is.finite(x)))
  sprintf("%.17g", x)
}
jstr <- function(s) paste0("\"", s, "\"")
write_json <- function(path, fields) {
  lines <- character(0)
  for (k in names(fields)) {
    v <- fields[[k]]
    txt <- if (is.null(v)) "null"
      else if (is.logical(v)) tolower(as.character(v))
      else if (inherits(v, "jint")) as.character(as.integer(v))
      else if (inherits(v, "jarrstr")) paste0("[", paste(jstr(unclass(v)), collapse = ", "), "]")
      else if (inherits(v, "jarrnum")) paste0("[", paste(num(unclass(v)), collapse = ", "), "]")
      else if (is.character(v)) jstr(v)
      else num(v)
    lines <- c(lines, paste0("  ", jstr(k), ": ", txt))
  }
  writeLines(c("{", paste(lines, collapse = ",\n"), "}"), path)
}
jint <- function(x) structure(x, class = "jint")
jarrnum <- function(x) structure(unname(as.numeric(x)), class = "jarrnum")
jarrstr <- function(x) structure(unname(as.character(x)), class = "jarrstr")
rel <- function(a, b) max(abs(a - b) / pmax(abs(b), 1e-300))

## Polish a glm fit: one scoring step at a time (maxit = 1) from the estimate until the
## coefficients move by < 1e-14 relative, so that coefficients and the covariance (whose
## working weights are those of the iterate before the last step) are at the MLE.
polish <- function(fit, refit) {
  for (k in 1:60) {
    b0 <- coef(fit)
    fit <- suppressWarnings(refit(unname(b0), glm.control(epsilon = 1e-15, maxit = 1)))
    if (rel(coef(fit), b0) < 1e-14) return(fit)
  }
  stop("polishing did not settle")
}

## MASS's theta.ml pieces (score and information of the theta log-likelihood).
th_score <- function(th, mu, y, w) sum(w * (digamma(th + y) - digamma(th) + log(th) + 1 - log(th + mu) - (y + th)/(mu + th)))
th_info <- function(th, mu, y, w) sum(w * (-trigamma(th + y) + trigamma(th) - 1/th + 2/(mu + th) - (y + th)/(mu + th)^2))
nb_loglik <- function(th, mu, y, w) sum(w * (lgamma(th + y) - lgamma(th) - lgamma(y + 1) + th * log(th) + y * log(mu + (y == 0)) - (th + y) * log(th + mu)))

write_case <- function(name, dataset, formula_text, famname, linkname, X, y, w, fit, se, extra, note) {
  xnames <- colnames(X)[-1]
  tab <- data.frame(y = y, X[, -1, drop = FALSE], check.names = FALSE)
  if (!is.null(w)) tab$w <- w
  csv <- file.path(outdir, paste0(name, ".csv"))
  writeLines(c(paste(colnames(tab), collapse = ","), apply(tab, 1, function(r) paste(num(r), collapse = ","))), csv)
  beta <- coef(fit)
  z <- qnorm(1 - (1 - 0.95) / 2)
  fields <- c(list(dataset = dataset, source = if (dataset == "quine") "R MASS::quine" else "R datasets::esoph",
                   formula = formula_text, peer = peer, family = famname, link = linkname, intercept = TRUE,
                   weight_column = if (is.null(w)) NULL else "w", offset_column = NULL, n_obs = jint(nrow(X)),
                   names = jarrstr(c("(Intercept)", xnames)),
                   coefficients = jarrnum(beta), std_errors = jarrnum(se),
                   conf_level = 0.95,
                   conf_int_lower = jarrnum(beta - z * se), conf_int_upper = jarrnum(beta + z * se)),
              extra, list(note = note))
  write_json(file.path(outdir, paste0(name, ".json")), fields)
  cat(sprintf("%-30s n=%d p=%d\n", name, nrow(X), ncol(X)))
}

quine <- MASS::quine
f_q <- Days ~ Eth + Sex + Age + Lrn
ftext_q <- "Days ~ Eth + Sex + Age + Lrn"
q_note <- "design in R's treatment coding: EthN, SexM, AgeF1, AgeF2, AgeF3, LrnSL (0/1)"

## ---- negative binomial, theta estimated (MASS::glm.nb) -------------------------
X <- model.matrix(f_q, quine)
y <- quine$Days
w <- rep(1, nrow(X))
p <- ncol(X)
nb_case <- function(name, link) {
  nb <- eval(bquote(glm.nb(f_q, data = quine, link = .(as.name(link)),
                           control = glm.control(epsilon = 1e-12, maxit = 100))))
  stopifnot(max(abs(model.matrix(nb) - X)) == 0)
  ## Polish the alternation beyond glm.nb's: theta.ml to 1e-15 at the current mean, then
  ## the beta fit at that theta (polished), until theta moves by < 1e-14 relative.
  th <- nb$theta
  fit <- nb
  for (k in 1:100) {
    t0 <- th
    th <- as.numeric(suppressWarnings(theta.ml(y, fitted(fit), limit = 100, eps = 1e-15)))
    refit <- function(start, ctl) glm(f_q, family = negative.binomial(th, link = link), data = quine,
                                      start = start, control = ctl)
    fit <- polish(refit(unname(coef(fit)), glm.control(epsilon = 1e-15, maxit = 100)), refit)
    if (abs(th - t0) < 1e-14 * th) break
  }
  mu <- fitted(fit)
  stopifnot(abs(th_score(th, mu, y, w)) < 1e-10)
  se <- sqrt(diag(summary(fit, dispersion = 1)$cov.scaled))
  ll <- nb_loglik(th, mu, y, w)
  theta_se <- 1 / sqrt(th_info(th, mu, y, w))
  ## The polished numbers against glm.nb's own (which stop on R's criteria).
  ci_nb <- confint.default(nb)
  cat(sprintf("%s: glm.nb vs polished: coef %.1e  se %.1e  theta %.1e  SE.theta %.1e  2ll %.1e  ci %.1e\n", name,
              rel(coef(nb), coef(fit)), rel(sqrt(diag(vcov(nb))), se), rel(nb$theta, th),
              rel(nb$SE.theta, theta_se), rel(nb$twologlik, 2 * ll),
              rel(c(ci_nb), c(coef(fit) - qnorm(0.975) * se, coef(fit) + qnorm(0.975) * se))))
  stopifnot(rel(coef(nb), coef(fit)) < 1e-6, rel(nb$theta, th) < 1e-6, rel(nb$twologlik, 2 * ll) < 1e-8,
            rel(nb$null.deviance, fit$null.deviance) < 1e-6, rel(nb$aic, -2 * ll + 2 * p + 2) < 1e-8)
  write_case(name, "quine", paste0("glm.nb(", ftext_q, if (link == "log") "" else paste0(", link = ", link), ")"),
             "negative.binomial", link, X, y, NULL,
             fit, se,
             list(theta = th, theta_std_error = theta_se, theta_estimated = TRUE,
                  log_likelihood = ll, two_log_likelihood = 2 * ll, deviance = fit$deviance,
                  null_deviance = fit$null.deviance, aic = -2 * ll + 2 * p + 2, bic = -2 * ll + log(nrow(X)) * (p + 1),
                  dispersion = 1, df_residual = jint(fit$df.residual)),
             paste0(q_note, "; glm.nb's alternation polished (theta.ml to 1e-15, beta fit polished) until theta ",
                    "moved < 1e-14 relative; std_errors with dispersion 1 (summary.negbin); conf_int = confint.default"))
}
nb_case("negbin_log_quine", "log")
nb_case("negbin_sqrt_quine", "sqrt")

## ---- negative binomial, theta fixed: glm(family = negative.binomial(1.5)) --------
th_fixed <- 1.5
refit <- function(start, ctl) glm(f_q, family = negative.binomial(th_fixed), data = quine, start = start, control = ctl)
fit <- polish(glm(f_q, family = negative.binomial(th_fixed), data = quine,
                  control = glm.control(epsilon = 1e-12, maxit = 100)), refit)
se <- sqrt(diag(summary(fit, dispersion = 1)$cov.scaled))
ll <- nb_loglik(th_fixed, fitted(fit), y, w)
stopifnot(rel(fit$aic, -2 * ll + 2 * p) < 1e-10)
write_case("negbin_log_quine_theta1.5", "quine", paste0(ftext_q, ", family = negative.binomial(1.5)"),
           "negative.binomial", "log", X, y, NULL, fit, se,
           list(theta = th_fixed, theta_std_error = NULL, theta_estimated = FALSE,
                log_likelihood = ll, two_log_likelihood = 2 * ll, deviance = fit$deviance,
                null_deviance = fit$null.deviance, aic = fit$aic, bic = -2 * ll + log(nrow(X)) * p,
                dispersion = 1, df_residual = jint(fit$df.residual)),
           paste0(q_note, "; std_errors with dispersion 1 (summary(fit, dispersion = 1)); aic = fit$aic"))

## ---- quasipoisson on quine --------------------------------------------------------
refit <- function(start, ctl) glm(f_q, family = quasipoisson, data = quine, start = start, control = ctl)
fit <- polish(glm(f_q, family = quasipoisson, data = quine, control = glm.control(epsilon = 1e-12, maxit = 100)), refit)
s <- summary(fit)
se <- sqrt(diag(s$cov.scaled))
stopifnot(is.na(AIC(fit)), rel(c(confint.default(fit)), c(coef(fit) - qnorm(0.975) * se, coef(fit) + qnorm(0.975) * se)) < 1e-14)
write_case("quasipoisson_log_quine", "quine", ftext_q, "quasipoisson", "log", X, y, NULL, fit, se,
           list(log_likelihood = NULL, aic = NULL, bic = NULL, deviance = fit$deviance,
                null_deviance = fit$null.deviance, dispersion = s$dispersion, df_residual = jint(fit$df.residual),
                t_values = jarrnum(coef(s)[, 3]), p_values = jarrnum(coef(s)[, 4])),
           paste0(q_note, "; dispersion = Pearson chi^2 / df_residual, t statistics; AIC NA"))

## ---- quasibinomial on esoph (proportions with trial weights) ------------------------
eso <- datasets::esoph
eso$agegp <- as.integer(eso$agegp)
eso$alcgp <- as.integer(eso$alcgp)
eso$tobgp <- as.integer(eso$tobgp)
f_e <- ncases/(ncases + ncontrols) ~ agegp + alcgp + tobgp
refit <- function(start, ctl) glm(f_e, family = quasibinomial, data = eso, weights = ncases + ncontrols,
                                  start = start, control = ctl)
fit <- polish(glm(f_e, family = quasibinomial, data = eso, weights = ncases + ncontrols,
                  control = glm.control(epsilon = 1e-12, maxit = 100)), refit)
s <- summary(fit)
se <- sqrt(diag(s$cov.scaled))
stopifnot(is.na(AIC(fit)), rel(c(confint.default(fit)), c(coef(fit) - qnorm(0.975) * se, coef(fit) + qnorm(0.975) * se)) < 1e-14)
write_case("quasibinomial_logit_esoph_weighted", "esoph",
           "ncases/(ncases + ncontrols) ~ agegp + alcgp + tobgp, weights = ncases + ncontrols",
           "quasibinomial", "logit", model.matrix(fit), fit$y, fit$prior.weights, fit, se,
           list(log_likelihood = NULL, aic = NULL, bic = NULL, deviance = fit$deviance,
                null_deviance = fit$null.deviance, dispersion = s$dispersion, df_residual = jint(fit$df.residual),
                t_values = jarrnum(coef(s)[, 3]), p_values = jarrnum(coef(s)[, 4])),
           "agegp/alcgp/tobgp as integer codes 1..k (as binomial_logit_esoph_weighted); dispersion = Pearson chi^2 / df_residual")
cat(R.version.string, "\n")
