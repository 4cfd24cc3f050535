#pragma once
/// \file error.hpp
/// The one exception type natgrad throws for user-facing failures (bad input, bad
/// options, numerical breakdown). Its message is complete: it names the file, line
/// and what was expected, and is printed once by the CLI on rank 0.
#include <stdexcept>
#include <string>

namespace natgrad {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// An error that every rank raised together: agreed through Communicator::check, or
/// derived from input every rank sees identically (the command line). Ranks that catch
/// it may finalize MPI and exit normally; any other exception ends the job via abort.
class CollectiveError : public Error {
 public:
  explicit CollectiveError(const std::string& what) : Error(what) {}
};

}  // namespace natgrad
