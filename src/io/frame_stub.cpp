// TEMPORARY (branch i14-formula): stands in for src/io/frame.cpp (branch i14-frame) so
// that design.cpp links; the lead deletes this file when merging frame.cpp.
#include "natgrad/core/error.hpp"
#include "natgrad/io/frame.hpp"

namespace natgrad {

const FrameColumn* Frame::find(std::string_view name) const {
  for (const FrameColumn& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}

std::vector<std::string> frame_header(const ReadOptions&) { throw Error("frame_header: not yet"); }

Frame read_frame(const ReadOptions&, const FrameRequest&, const Communicator&) {
  throw CollectiveError("read_frame: not yet");
}

}  // namespace natgrad
