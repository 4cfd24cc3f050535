#!/usr/bin/env Rscript
## Regenerates the residual and prediction-SE references of natgrad's outputs tests
## (tests/cli/run_outputs_tests.sh): for GLM fixtures of tests/fixtures/glm, R's
## residuals of every type and predict.glm's standard errors on both scales.
##
##   LC_ALL=C Rscript tests/peers/residuals_reference.R tests/fixtures/glm
##
## Base R only. Reads NAME.csv (label y, the model-matrix columns, w and offset where
## the case has them) and writes NAME.residuals.csv with one line per row:
##   row, y, mu = fitted(fit), eta = fit$linear.predictors (offset included),
##   deviance, pearson, working, response = residuals(fit, type = ...),
##   se_eta = predict(fit, se.fit = TRUE)$se.fit (type "link"),
##   se_mu  = predict(fit, type = "response", se.fit = TRUE)$se.fit
## glm is converged to epsilon = 1e-14; numbers are %.17g. Deterministic.

args <- commandArgs(trailingOnly = TRUE)
dir <- if (length(args) >= 1) args[1] else file.path("tests", "fixtures", "glm")
ctl <- glm.control(epsilon = 1e-14, maxit = 500)

cases <- list(
  list(name = "poisson_log_seatbelts_offset", family = poisson(link = "log")),
  list(name = "binomial_logit_esoph_weighted", family = binomial(link = "logit")),
  list(name = "gamma_log_trees", family = Gamma(link = "log")),
  list(name = "binomial_probit_infert", family = binomial(link = "probit"))
)

for (cs in cases) {
  d <- read.csv(file.path(dir, paste0(cs$name, ".csv")))
  preds <- setdiff(names(d), c("y", "w", "offset"))
  f <- as.formula(paste("y ~", paste(preds, collapse = " + ")))
  fit <- if ("w" %in% names(d)) {
    suppressWarnings(glm(f, family = cs$family, data = d, weights = w, control = ctl))
  } else if ("offset" %in% names(d)) {
    glm(f, family = cs$family, data = d, offset = offset, control = ctl)
  } else {
    glm(f, family = cs$family, data = d, control = ctl)
  }
  link <- predict(fit, se.fit = TRUE)
  resp <- predict(fit, type = "response", se.fit = TRUE)
  stopifnot(max(abs(link$fit - fit$linear.predictors)) < 1e-12)
  out <- data.frame(
    row = seq_len(nrow(d)), y = d$y, mu = fitted(fit), eta = fit$linear.predictors,
    deviance = residuals(fit, type = "deviance"), pearson = residuals(fit, type = "pearson"),
    working = residuals(fit, type = "working"), response = residuals(fit, type = "response"),
    se_eta = link$se.fit, se_mu = resp$se.fit)
  lines <- c(paste(names(out), collapse = ","),
             apply(out, 1, function(r) paste(c(sprintf("%d", as.integer(r[1])), sprintf("%.17g", r[-1])),
                                              collapse = ",")))
  path <- file.path(dir, paste0(cs$name, ".residuals.csv"))
  writeLines(lines, path)
  cat("wrote", path, "\n")
}
