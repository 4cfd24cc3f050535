#pragma once
/// \file demo.hpp
/// The seed's experiment (natural-gradient-descent.md): logistic regression without
/// intercept on the two-Gaussian mixture (100 + 100 points, shuffled, the first 150
/// used for training), weights initialised N(0, 0.01^2), 5 iterations at learning rate
/// 1, NGD with the centred empirical Fisher versus vanilla gradient descent, repeated.
/// Collective: the data of each repetition are spread over the communicator's ranks.
#include <filesystem>
#include <ostream>
#include <vector>

#include "natgrad/core/communicator.hpp"

namespace natgrad {

struct DemoOptions {
  int repetitions = 100;
  int iterations = 5;
  double lr = 1.0;
  std::uint64_t seed = 2018;
  int threads = 1;
  std::filesystem::path out_dir = "natgrad-demo";
};

struct DemoResult {
  // loss_mean[m][k], loss_std[m][k]: method m (0 = NGD, 1 = GD) after k iterations.
  std::vector<double> ngd_mean, ngd_std, gd_mean, gd_std;
};

/// Collective. Runs the experiment; on root prints the table to \p out and writes
/// out_dir/curves.csv and out_dir/curves.png.
DemoResult run_demo(const DemoOptions& options, const Communicator& comm, std::ostream& out);

}  // namespace natgrad
