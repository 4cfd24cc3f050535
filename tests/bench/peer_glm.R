# Fits the benchmark's logistic regression with R's glm.fit (IRLS with LINPACK QR) on
# the first ROWS rows of the NPY file `natgrad generate` wrote (label in column 0).
# usage: Rscript tests/bench/peer_glm.R DATA.npy ROWS [EPSILON]
# Prints one CSV record: solver,rows,cols,load_s,fit_s,iterations,grad_max,loss,note
# (the same fields as tests/bench/peers.py; grad_max is max |gradient of the mean log-loss|).
args <- commandArgs(trailingOnly = TRUE)
path <- args[1]
rows <- as.numeric(args[2])
eps <- if (length(args) >= 3) as.numeric(args[3]) else 1e-12

read_npy <- function(path, rows) {
  con <- file(path, "rb")
  on.exit(close(con))
  magic <- readBin(con, "raw", 8)
  if (!identical(magic[1:6], as.raw(c(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59)))) stop("not an NPY file")
  hlen <- if (as.integer(magic[7]) == 1) {
    readBin(con, "integer", 1, size = 2, signed = FALSE, endian = "little")
  } else {
    readBin(con, "integer", 1, size = 4, endian = "little")
  }
  header <- rawToChar(readBin(con, "raw", hlen))
  if (!grepl("'<f8'", header, fixed = TRUE) || grepl("True", header, fixed = TRUE))
    stop("expected C-order float64: ", header)
  shape <- as.numeric(strsplit(sub(".*\\(([0-9]+), *([0-9]+)\\).*", "\\1 \\2", header), " ")[[1]])
  n <- min(rows, shape[1])
  v <- readBin(con, "double", n = n * shape[2], size = 8, endian = "little")
  matrix(v, nrow = n, ncol = shape[2], byrow = TRUE)
}

t0 <- proc.time()[["elapsed"]]
m <- read_npy(path, rows)
y <- m[, 1]
x <- m[, -1, drop = FALSE]
rm(m)
load_s <- proc.time()[["elapsed"]] - t0
t0 <- proc.time()[["elapsed"]]
fit <- glm.fit(x, y, family = binomial(), control = glm.control(epsilon = eps, maxit = 100))
fit_s <- proc.time()[["elapsed"]] - t0
beta <- fit$coefficients
eta <- drop(x %*% beta)
p <- plogis(eta)
g <- drop(crossprod(x, p - y)) / length(y)
loss <- mean(ifelse(eta > 0, eta + log1p(exp(-eta)), log1p(exp(eta))) - y * eta)
note <- if (fit$converged) "" else "did not converge"
cat(sprintf("r-glm.fit,%d,%d,%.4f,%.4f,%d,%.3e,%.12g,%s\n", nrow(x), ncol(x), load_s, fit_s, fit$iter,
            max(abs(g)), loss, note))
