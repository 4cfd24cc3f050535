# The R side of tests/bench/formula/run.sh (run with LC_ALL=C).
#
#   Rscript bench.R export DIR          DIR/fertility.csv (AER's Fertility, factors as text,
#                                       254,654 rows) and DIR/insteval.csv (lme4's InstEval,
#                                       73,421 rows, the ids as R prints them: numbers)
#   Rscript bench.R time DIR REPS OUT   times glm(morekids ~ gender1 * gender2 + age + afam +
#                                       hispanic + other, binomial): REPS runs of glm on the
#                                       data frame (data(Fertility), what an R user has in
#                                       memory) and REPS of read.csv(fertility.csv) + glm;
#                                       each run's seconds to OUT.times.csv; then, untimed, a
#                                       tight fit (epsilon 1e-12) whose names, coefficients
#                                       and SEs go to OUT.json for the agreement check
# data(package = "AER") loads the data set without attaching AER (and car, lmtest, ...).
args <- commandArgs(trailingOnly = TRUE)
mode <- args[1]
FORMULA <- morekids ~ gender1 * gender2 + age + afam + hispanic + other

if (mode == "export") {
  dir <- args[2]
  data("Fertility", package = "AER")
  f <- Fertility[, c("morekids", "gender1", "gender2", "age", "afam", "hispanic", "other", "work")]
  for (v in names(f)) if (is.factor(f[[v]])) f[[v]] <- as.character(f[[v]])
  write.csv(f, file.path(dir, "fertility.csv"), row.names = FALSE, quote = FALSE)
  data("InstEval", package = "lme4")
  ie <- InstEval
  for (v in names(ie)) if (is.factor(ie[[v]])) ie[[v]] <- as.character(ie[[v]])
  write.csv(ie, file.path(dir, "insteval.csv"), row.names = FALSE, quote = FALSE)
  cat(sprintf("exported fertility.csv (%d rows) and insteval.csv (%d rows)\n", nrow(f), nrow(ie)))
} else if (mode == "time") {
  dir <- args[2]
  reps <- as.integer(args[3])
  out <- args[4]
  data("Fertility", package = "AER")
  csv <- file.path(dir, "fertility.csv")
  times <- data.frame(what = character(0), rep = integer(0), seconds = numeric(0))
  for (r in seq_len(reps)) {
    gc()
    t <- system.time(fit <- glm(FORMULA, family = binomial, data = Fertility))[["elapsed"]]
    times[nrow(times) + 1, ] <- list("r-glm-data-frame", r, t)
    gc()
    t <- system.time({
      d <- read.csv(csv, stringsAsFactors = TRUE)  # binomial glm needs a factor, not text
      fit2 <- glm(FORMULA, family = binomial, data = d)
    })[["elapsed"]]
    times[nrow(times) + 1, ] <- list("r-read.csv+glm", r, t)
  }
  write.csv(times, paste0(out, ".times.csv"), row.names = FALSE, quote = FALSE)
  stopifnot(isTRUE(all.equal(coef(fit), coef(fit2), tolerance = 1e-12)))
  tight <- glm(FORMULA, family = binomial, data = d, control = glm.control(epsilon = 1e-12, maxit = 100))
  s <- coef(summary(tight))
  js <- function(x) paste0("[", paste(sprintf("%.17g", x), collapse = ", "), "]")
  writeLines(c("{", sprintf('  "names": [%s],', paste0('"', rownames(s), '"', collapse = ", ")),
               sprintf('  "coefficients": %s,', js(s[, 1])), sprintf('  "std_errors": %s,', js(s[, 2])),
               sprintf('  "default_fit_coefficients": %s,', js(coef(fit))),
               sprintf('  "default_fit_iterations": %d,', fit$iter),
               sprintf('  "deviance": %.17g', deviance(tight)), "}"), paste0(out, ".json"))
  cat(sprintf("R %s, AER %s: glm on the data frame best %.2f s, read.csv + glm best %.2f s (%d runs each; %d IRLS iterations)\n",
              paste(R.version$major, R.version$minor, sep = "."), packageVersion("AER"),
              min(times$seconds[times$what == "r-glm-data-frame"]), min(times$seconds[times$what == "r-read.csv+glm"]),
              reps, fit$iter))
} else {
  stop("usage: bench.R export DIR | time DIR REPS OUT")
}
