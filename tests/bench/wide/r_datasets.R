#!/usr/bin/env Rscript
# Writes two of the wide benchmark's datasets as LIBSVM files (labels -1/+1, 1-based
# indices, ascending within a row, no intercept column), from Debian's R packages:
#
#   movielens.svm  dslabs::movielens: rating >= 4 ~ user + movie, both factors one-hot
#                  with every level (users 1..U, then movies U+1..U+M)
#   insteval.svm   lme4::InstEval: y >= 4 ~ s + d (student, then lecturer), every level
#
# usage: Rscript r_datasets.R OUTDIR [movielens] [insteval]
# Also writes FILE.svm.meta (rows, cols, nnz, source), read by tests/bench/wide/wide.py.
args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: Rscript r_datasets.R OUTDIR [movielens] [insteval]")
out <- args[1]
which <- if (length(args) > 1) args[-1] else c("movielens", "insteval")

write_onehot <- function(path, y, f1, f2, source) {
  f1 <- factor(f1)  # levels sorted (numerically for integer ids)
  f2 <- factor(f2)
  n1 <- nlevels(f1)
  i1 <- as.integer(f1)
  i2 <- n1 + as.integer(f2)
  lab <- ifelse(y, "1", "-1")
  lines <- paste0(lab, " ", i1, ":1 ", i2, ":1")
  tmp <- paste0(path, ".tmp")
  writeLines(lines, tmp)
  file.rename(tmp, path)
  cols <- n1 + nlevels(f2)
  writeLines(c(paste0("rows=", length(y)), paste0("cols=", cols), paste0("nnz=", 2 * length(y)),
               paste0("source=", source, " (", n1, " + ", nlevels(f2), " levels, ",
                      sprintf("%.3f", mean(y)), " positive)")),
             paste0(path, ".meta"))
  cat(sprintf("%s: %d x %d (%d + %d levels), %.3f positive\n", path, length(y), cols, n1,
              nlevels(f2), mean(y)))
}

if ("movielens" %in% which) {
  suppressPackageStartupMessages(library(dslabs))
  data("movielens", package = "dslabs")
  m <- movielens
  write_onehot(file.path(out, "movielens.svm"), m$rating >= 4, m$userId, m$movieId,
               paste0("dslabs ", packageVersion("dslabs"), " movielens: rating >= 4 ~ userId + movieId"))
}
if ("insteval" %in% which) {
  suppressPackageStartupMessages(library(lme4))
  data("InstEval", package = "lme4")
  d <- InstEval
  write_onehot(file.path(out, "insteval.svm"), as.integer(as.character(d$y)) >= 4, d$s, d$d,
               paste0("lme4 ", packageVersion("lme4"), " InstEval: y >= 4 ~ s + d"))
}
