// read_frame (frame.hpp): the requested columns of a CSV table as typed columns, on the
// CSV reader's machinery (reader_detail: File, the byte-range split, for_each_line_chunk,
// fields with RFC 4180 quoting, LocalError / located).
//
// Per rank, per chunk of lines: each OpenMP thread takes a contiguous part of the lines
// and parses it in blocks of kBlock lines: (A) the requested fields of each line (views
// into the chunk, trimmed and unquoted), then (B) each requested column: missing values,
// numbers, and texts interned in the thread's own open-addressing table (Levels) keyed by
// the text (a level's text is copied only when it is new). After the read the threads'
// tables are merged per column and the codes remapped; nothing depends on the thread
// count. While a column holds only numbers its texts are interned too, up to
// kNumericTexts distinct ones, so that a column that turns out to be text elsewhere needs
// no second read of this rank's lines (beyond that cap it is read again, for that column
// only). Then one exchange (gather to root, broadcast back) settles the kinds and the
// levels; a second exchange happens only when a column is text on some rank and all
// numbers on another.
#include "natgrad/io/frame.hpp"

#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "natgrad/core/error.hpp"
#include "natgrad/core/partition.hpp"
#include "natgrad/io/generator.hpp"
#include "io/reader_detail.hpp"

namespace natgrad {

const FrameColumn* Frame::find(std::string_view name) const {
  for (const FrameColumn& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}

namespace {

using namespace reader_detail;

/// Distinct texts of a column interned while it holds only numbers (see the top).
constexpr std::size_t kNumericTexts = 256;

/// Code of a numeric field whose text was not interned (beyond kNumericTexts).
constexpr std::int32_t kNotInterned = -2;

/// The shortest decimal that reads back as \p v (std::to_chars: 1, 2.5, 1e+06).
std::string number_name(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

/// Opens the file's header line; "" or the complete error.
std::string open_header(File& file, const ReadOptions& opts, HeaderInfo& head) {
  if (!file.ok()) return opts.path + ": cannot open: " + file.error();
  if (opts.header == ReadOptions::Header::no)
    return opts.path + " is read without a header line (--header no), but a formula names columns";
  std::string err = read_header(file, opts, head);
  if (!err.empty()) return err;
  if (!head.is_header)
    return opts.path + " has no header line (its first line is all numbers; use --header yes if it holds names), "
                       "but a formula names columns";
  return {};
}

bool is_digits(std::string_view t) {
  return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

/// "'a', 'b', 'c'" (the first 20).
std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t j = 0; j < names.size() && j < 20; ++j) s += (j ? ", '" : "'") + shown(names[j]) + "'";
  if (names.size() > 20) s += ", ... (" + std::to_string(names.size()) + " columns)";
  return s;
}

/// A requested field of a line: the bytes of its text in the chunk buffer (trimmed,
/// unquoted); escaped: doubled quotes still to collapse.
struct FieldRef {
  std::uint64_t begin = 0;
  std::uint32_t size = 0;
  std::uint32_t escaped = 0;
};

/// Interned texts, ids by first sight: an open-addressing hash table of ids keyed by the
/// texts (views into stable storage), so that a lookup with a view into the chunk buffer
/// copies nothing unless the text is new.
class Levels {
 public:
  static std::uint64_t hash(std::string_view t) {
    const char* p = t.data();
    const std::size_t n = t.size();
    const std::uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    if (n <= 8) return mix(h ^ word(p, n));
    std::uint64_t x = h;
    std::size_t i = 0;
    for (; i + 8 < n; i += 8) x = mix(x ^ load8(p + i));
    return mix(x ^ load8(p + n - 8));
  }
  /// a == b, for short texts without a call.
  static bool same(std::string_view a, std::string_view b) {
    const std::size_t n = a.size();
    if (n != b.size()) return false;
    if (n <= 8) return word(a.data(), n) == word(b.data(), n);
    for (std::size_t i = 0; i + 8 < n; i += 8)
      if (load8(a.data() + i) != load8(b.data() + i)) return false;
    return load8(a.data() + n - 8) == load8(b.data() + n - 8);
  }
  std::size_t size() const { return views_.size(); }
  const std::deque<std::string>& texts() const { return text_; }
  /// The id of \p t (of hash \p h), or -1.
  std::int32_t find(std::string_view t, std::uint64_t h) const {
    if (slots_.empty()) return -1;
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const std::int32_t id = slots_[i];
      if (id < 0) return -1;
      const auto k = static_cast<std::size_t>(id);
      if (hashes_[k] == h && same(views_[k], t)) return id;
    }
  }
  /// Adds \p t (not present), copying its text; returns its id.
  std::int32_t insert(std::string_view t, std::uint64_t h) {
    if ((views_.size() + 1) * 2 > slots_.size()) grow();
    const auto id = static_cast<std::int32_t>(views_.size());
    text_.emplace_back(t);
    views_.emplace_back(text_.back());
    hashes_.push_back(h);
    place(id);
    return id;
  }
  void clear() { *this = Levels(); }

 private:
  static std::uint64_t load8(const char* p) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, 8);
    return w;
  }
  static std::uint32_t load4(const char* p) {
    std::uint32_t w = 0;
    std::memcpy(&w, p, 4);
    return w;
  }
  /// The n <= 8 bytes at p as one word (overlapping loads; n tells the lengths apart).
  static std::uint64_t word(const char* p, std::size_t n) {
    if (n >= 4) return (std::uint64_t{load4(p)} << 32) | load4(p + n - 4);
    if (n == 0) return 0;
    const auto b = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(p[i])}; };
    return (b(0) << 16) | (b(n >> 1) << 8) | b(n - 1);
  }
  static std::uint64_t mix(std::uint64_t x) {
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 31;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 29);
  }
  void place(std::int32_t id) {
    std::size_t i = hashes_[static_cast<std::size_t>(id)] & mask_;
    while (slots_[i] >= 0) i = (i + 1) & mask_;
    slots_[i] = id;
  }
  void grow() {
    const std::size_t n = std::max<std::size_t>(16, slots_.size() * 2);
    slots_.assign(n, -1);
    mask_ = n - 1;
    for (std::size_t k = 0; k < views_.size(); ++k) place(static_cast<std::int32_t>(k));
  }
  std::deque<std::string> text_;  ///< stable: a deque does not move its elements
  std::vector<std::string_view> views_;
  std::vector<std::uint64_t> hashes_;
  std::vector<std::int32_t> slots_;
  std::size_t mask_ = 0;
};

/// What one thread has seen of a column (its lines of each chunk).
struct ThreadColumn {
  bool text = false;        ///< a field that is neither a number nor missing
  bool incomplete = false;  ///< some number's text was not interned (kNotInterned)
  bool numbers = false;     ///< a number
  Levels levels;            ///< the texts, ids by first sight (the codes this thread wrote)
};

/// One column of the file that is read (requests of the same column share it).
struct Column {
  std::string name;
  std::int64_t index = -1;
  bool as_factor = false;
  // fixed_levels: the given levels, matched by text or (all canonical numbers) by value.
  const std::vector<std::string>* fixed = nullptr;
  bool fixed_numeric = false;
  std::unordered_map<std::string_view, std::int32_t> fixed_text;
  std::unordered_map<double, std::int32_t> fixed_value;

  // This rank's rows: per thread while reading, then merged (Reader::merge).
  std::vector<ThreadColumn> part;
  bool text = false, incomplete = false, numbers = false;  ///< any thread's
  std::vector<double> values;       ///< numbers (NaN: missing or text)
  std::vector<std::int32_t> codes;  ///< level ids (per thread, then into levels), -1 missing, kNotInterned
  Levels levels;                    ///< the rank's texts, ids by first sight over the threads
};

struct Reader {
  Reader(const ReadOptions& o, std::vector<Column>& c, std::int64_t fields, int t)
      : opts(o), cols(c), n_fields(fields), threads(t) {
    for (Column& col : cols) col.part.resize(static_cast<std::size_t>(threads));
  }

  const ReadOptions& opts;
  std::vector<Column>& cols;
  std::int64_t n_fields = 0;
  int threads = 1;
  std::vector<std::int32_t> slot_of_field;  ///< per field of a line: column slot or -1
  bool record_lines = true;  ///< first pass: values and lines; a second pass: codes of some columns only
  std::vector<char> active;  ///< per column slot: parsed in this pass
  std::int64_t rows = 0;     ///< rows so far
  std::vector<std::int64_t> line;  ///< per row: local line index
  /// Rows [first, last) hold the codes thread t wrote (its ids), in row order.
  struct Segment {
    std::int64_t first, last;
    int thread;
  };
  std::vector<Segment> segments;
  LocalError err;

  /// Lines per block: a block's fields and text stay in cache while its columns are parsed.
  static constexpr std::int64_t kBlock = 2048;

  /// A thread's first problem in a chunk: its chunk line and message.
  struct Problem {
    std::int64_t k = std::numeric_limits<std::int64_t>::max();
    std::string what;
  };

  /// Parses one chunk: each thread takes a contiguous part of its lines and parses them a
  /// block at a time (fields, then each column), with its own level tables. False (err
  /// set) at the first bad line or problem.
  bool chunk(const std::string& buf, const std::vector<LineSpan>& spans) {
    const auto n = static_cast<std::int64_t>(spans.size());
    const auto row0 = static_cast<std::size_t>(rows);
    const std::size_t want = row0 + static_cast<std::size_t>(n);
    for (std::size_t c = 0; c < cols.size(); ++c) {
      if (!active[c]) continue;
      if (cols[c].codes.size() < want) cols[c].codes.resize(want);
      if (record_lines) cols[c].values.resize(want);
    }
    if (record_lines) line.resize(want);
    std::vector<Problem> first(static_cast<std::size_t>(threads));
#pragma omp parallel num_threads(threads)
    {
      std::vector<FieldRef> refs;
      // Part t of the lines (and of each column's ThreadColumn): thread t's, unless the
      // runtime gave fewer threads.
      for (int t = omp_get_thread_num(); t < threads; t += omp_get_num_threads()) {
        const std::int64_t k0 = n * t / threads, k1 = n * (t + 1) / threads;
        for (std::int64_t b0 = k0; b0 < k1; b0 += kBlock) {
          Problem& p = first[static_cast<std::size_t>(t)];
          block(buf, spans, b0, std::min(k1, b0 + kBlock), t, row0, refs, p);
          if (p.k < k1) break;
        }
        if (record_lines)
          for (std::int64_t k = k0; k < k1; ++k)
            line[row0 + static_cast<std::size_t>(k)] = spans[static_cast<std::size_t>(k)].line;
      }
    }
    Problem p;
    for (const Problem& q : first)
      if (q.k < p.k) p = q;  // threads' lines are in order: the lowest thread's problem
    const std::int64_t good = std::min(p.k, n);
    for (int t = 0; t < threads; ++t) {
      const std::int64_t a = n * t / threads, b = std::min(good, n * (t + 1) / threads);
      if (a < b) segments.push_back({rows + a, rows + b, t});
    }
    rows += good;
    if (good == n) return true;
    err = {spans[static_cast<std::size_t>(p.k)].line, p.what};
    return false;
  }

  /// Chunk lines [b0, b1) on thread \p t: \p p gets the first problem.
  void block(const std::string& buf, const std::vector<LineSpan>& spans, std::int64_t b0, std::int64_t b1, int t,
             std::size_t row0, std::vector<FieldRef>& refs, Problem& p) {
    const std::int64_t n = b1 - b0;
    const std::size_t m = cols.size();
    const char delim = opts.delimiter;
    refs.resize(static_cast<std::size_t>(n) * m);  // column-major: refs[c * n + k]
    // (A) the requested fields of each line, up to the first line with the wrong number
    // of fields or bad quoting.
    std::int64_t good = n;
    for (std::int64_t k = 0; k < n && good == n; ++k) {
      const LineSpan& s = spans[static_cast<std::size_t>(b0 + k)];
      const std::string_view lv(buf.data() + s.begin, s.end - s.begin);
      std::size_t pos = 0;
      Field f;
      for (std::int64_t field = 0;; ++field) {
        if (field >= n_fields) {
          good = k;
          break;
        }
        const Next r = next_field(lv, pos, delim, f);
        if (r == Next::unterminated || r == Next::text_after_quote) {
          good = k;
          break;
        }
        const std::int32_t slot = slot_of_field[static_cast<std::size_t>(field)];
        if (slot >= 0) {
          const std::string_view tx = f.quoted ? trim(f.text, delim) : f.text;
          refs[static_cast<std::size_t>(slot) * static_cast<std::size_t>(n) + static_cast<std::size_t>(k)] = {
              s.begin + static_cast<std::uint64_t>(tx.data() - lv.data()), static_cast<std::uint32_t>(tx.size()),
              f.escaped ? 1U : 0U};
        }
        if (r == Next::last) {
          if (field + 1 != n_fields) good = k;
          break;
        }
      }
    }
    // (B) each column of the lines before the bad one; the first problem (slots are in
    // file order, so a tie goes to the leftmost column), else the bad line.
    Problem q;
    q.k = good;
    for (std::size_t c = 0; c < m; ++c) {
      if (!active[c]) continue;
      Problem pc;
      parse_column(cols[c], cols[c].part[static_cast<std::size_t>(t)], buf, refs.data() + c * static_cast<std::size_t>(n),
                   q.k, row0 + static_cast<std::size_t>(b0), pc);
      if (pc.k < q.k) q = std::move(pc);
    }
    if (q.k == n) return;
    if (q.what.empty()) {
      const LineSpan& s = spans[static_cast<std::size_t>(b0 + q.k)];
      const SplitLine sl = split_line(std::string_view(buf.data() + s.begin, s.end - s.begin), delim);
      q.what = !sl.error.empty() ? sl.error
                                 : "expected " + std::to_string(n_fields) + " fields, found " +
                                       std::to_string(sl.fields.size());
    }
    p = {b0 + q.k, std::move(q.what)};
  }

  static std::string column_words(const Column& col) {
    return "column " + std::to_string(col.index) + " ('" + shown(col.name) + "')";
  }

  /// Lines [0, good) of a block (their fields \p fr) of column \p col into rows row0..,
  /// with thread part \p tc.
  void parse_column(Column& col, ThreadColumn& tc, const std::string& buf, const FieldRef* fr, std::int64_t good,
                    std::size_t row0, Problem& problem) const {
    const bool fail = opts.na == ReadOptions::Na::fail;
    std::string scratch;
    for (std::int64_t k = 0; k < good; ++k) {
      const FieldRef& ref = fr[k];
      std::string_view t(buf.data() + ref.begin, ref.size);
      if (ref.escaped) {
        scratch.clear();
        for (std::size_t i = 0; i < t.size(); ++i) {
          scratch.push_back(t[i]);
          if (t[i] == '"' && i + 1 < t.size() && t[i + 1] == '"') ++i;
        }
        t = scratch;
      }
      const std::size_t r = row0 + static_cast<std::size_t>(k);
      if (!ref.escaped && is_missing_text(t)) {
        if (record_lines) col.values[r] = std::numeric_limits<double>::quiet_NaN();
        col.codes[r] = -1;
        if (fail) {
          problem = {k, column_words(col) + ": missing value '" + shown(t) +
                            "' (--na fail; --na omit drops the rows with missing values)"};
          return;
        }
        continue;
      }
      if (col.fixed) {
        std::int32_t code = -1;
        double v = 0.0;
        if (col.fixed_numeric) {
          if (parse_double(t, v)) {
            if (v == 0.0) v = 0.0;
            const auto it = col.fixed_value.find(v);
            if (it != col.fixed_value.end()) code = it->second;
          }
        } else {
          const auto it = col.fixed_text.find(t);
          if (it != col.fixed_text.end()) code = it->second;
        }
        if (code < 0) {
          problem = {k, "level '" + shown(t) + "' of column '" + shown(col.name) + "' (column " +
                            std::to_string(col.index) + ") was not seen when the model was fitted"};
          return;
        }
        col.codes[r] = code;
        continue;
      }
      if (!tc.text) {
        double v = 0.0;
        if (parse_double(t, v)) {
          tc.numbers = true;
          if (record_lines) col.values[r] = v;
          if (tc.incomplete) {
            col.codes[r] = kNotInterned;
            continue;
          }
          const std::uint64_t h = Levels::hash(t);
          const std::int32_t id = tc.levels.find(t, h);
          if (id >= 0) {
            col.codes[r] = id;
          } else if (tc.levels.size() < kNumericTexts) {
            col.codes[r] = tc.levels.insert(t, h);
          } else {
            tc.incomplete = true;
            col.codes[r] = kNotInterned;
          }
          continue;
        }
        tc.text = true;
      }
      if (record_lines) col.values[r] = std::numeric_limits<double>::quiet_NaN();
      const std::uint64_t h = Levels::hash(t);
      const std::int32_t id = tc.levels.find(t, h);
      if (id >= 0) {
        col.codes[r] = id;
        continue;
      }
      const std::string bad = utf8_error(t);
      if (!bad.empty()) {
        problem = {k, column_words(col) + ": '" + shown(t) + "' is not valid UTF-8 (" + bad +
                          "); a level names a coefficient: save the file as UTF-8"};
        return;
      }
      col.codes[r] = tc.levels.insert(t, h);
    }
  }

  /// Reads this rank's lines, parsing the active columns; "" or a read error (a bad line
  /// or problem sets err instead). Then merges the threads' parts of the active columns.
  std::string pass(File& file, std::int64_t body_begin, const Range& mine, std::int64_t& lines) {
    segments.clear();
    std::string e;
    try {
      e = for_each_line_chunk(file, body_begin, mine, lines,
                              [&](const std::string& buf, const std::vector<LineSpan>& spans) {
                                return chunk(buf, spans);
                              });
    } catch (const std::bad_alloc&) {
      e = "out of memory after " + std::to_string(rows) + " rows of this rank";
    }
    for (Column& col : cols) col.codes.resize(static_cast<std::size_t>(rows));
    if (record_lines) {
      for (Column& col : cols) col.values.resize(static_cast<std::size_t>(rows));
      line.resize(static_cast<std::size_t>(rows));
    }
    merge();
    return e;
  }

  /// The threads' parts of each active column into the column: the union of their texts
  /// (ids by first sight, thread 0 first) and the codes remapped to it (parallel over
  /// the columns).
  void merge() {
    const auto m = static_cast<std::int64_t>(cols.size());
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (std::int64_t ci = 0; ci < m; ++ci) {
      const auto c = static_cast<std::size_t>(ci);
      Column& col = cols[c];
      if (!active[c] || col.fixed) continue;
      col.levels.clear();
      col.text = col.incomplete = col.numbers = false;
      std::vector<std::vector<std::int32_t>> to(col.part.size());
      for (std::size_t t = 0; t < col.part.size(); ++t) {
        ThreadColumn& tc = col.part[t];
        col.text |= tc.text;
        col.incomplete |= tc.incomplete;
        col.numbers |= tc.numbers;
        for (const std::string& s : tc.levels.texts()) {
          const std::uint64_t h = Levels::hash(s);
          const std::int32_t id = col.levels.find(s, h);
          to[t].push_back(id >= 0 ? id : col.levels.insert(s, h));
        }
        tc = ThreadColumn{};
      }
      for (const Segment& sg : segments) {
        const std::vector<std::int32_t>& map = to[static_cast<std::size_t>(sg.thread)];
        for (std::int64_t r = sg.first; r < sg.last; ++r) {
          std::int32_t& code = col.codes[static_cast<std::size_t>(r)];
          if (code >= 0) code = map[static_cast<std::size_t>(code)];
        }
      }
    }
  }
};

// ---------------------------------------------------------------------------
// The exchange: strings with length prefixes.

void put(std::string& s, std::uint64_t v) { s.append(reinterpret_cast<const char*>(&v), sizeof v); }
void put(std::string& s, std::string_view t) {
  put(s, static_cast<std::uint64_t>(t.size()));
  s.append(t);
}
/// A list of strings: its length, then each string (Cursor::list reads it back).
template <class Strings>
void put_list(std::string& s, const Strings& v) {
  put(s, static_cast<std::uint64_t>(v.size()));
  for (const std::string& t : v) put(s, t);
}

struct Cursor {
  const std::string& s;
  std::size_t at = 0;
  std::uint64_t u64() {
    std::uint64_t v = 0;
    std::memcpy(&v, s.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  std::string str() {
    const auto n = static_cast<std::size_t>(u64());
    std::string t = s.substr(at, n);
    at += n;
    return t;
  }
  /// A put_list's strings, appended to \p into; returns how many.
  std::uint64_t list(std::vector<std::string>& into) {
    const std::uint64_t n = u64();
    for (std::uint64_t j = 0; j < n; ++j) into.push_back(str());
    return n;
  }
};

/// Column kinds in the exchange.
enum : std::uint64_t { kNumbers = 0, kText = 1, kNumericFactor = 2, kNoValue = 3 };

void sort_text_levels(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());  // std::string compares as unsigned bytes: C-locale order
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

/// Numeric levels (shortest texts) in numeric order, each named by number_name.
std::vector<std::string> sort_numeric_levels(const std::vector<std::string>& texts) {
  std::vector<double> v;
  v.reserve(texts.size());
  for (const std::string& t : texts) {
    double x = 0.0;
    parse_double(t, x);
    v.push_back(x == 0.0 ? 0.0 : x);
  }
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  std::vector<std::string> out;
  out.reserve(v.size());
  for (const double x : v) out.push_back(number_name(x));
  return out;
}

/// The distinct non-missing values of a numeric column, as shortest texts.
std::vector<std::string> distinct_numbers(const std::vector<double>& values) {
  std::vector<double> v;
  v.reserve(values.size());
  for (const double x : values)
    if (!std::isnan(x)) v.push_back(x == 0.0 ? 0.0 : x);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  std::vector<std::string> out;
  out.reserve(v.size());
  for (const double x : v) out.push_back(number_name(x));
  return out;
}

}  // namespace

std::vector<std::string> frame_header(const ReadOptions& opts) {
  // A formula names columns: it reads a CSV file with a header line, nothing else.
  const std::string format = is_generator_spec(opts.path) ? "a generator spec" : input_format(opts);
  if (format != "csv")
    throw Error("--formula reads a CSV file with a header line; " + opts.path + " is " +
                (format == "a generator spec" ? format : "read as " + format) +
                " (give its columns with --label-column, --columns and --offset-column instead)");
  File file(opts.path);
  HeaderInfo head;
  const std::string err = open_header(file, opts, head);
  if (!err.empty()) throw Error(err);
  return head.fields;
}

Frame read_frame(const ReadOptions& opts, const FrameRequest& request, const Communicator& comm) {
  const std::string& path = opts.path;
  File file(path);
  HeaderInfo head;
  std::string err = open_header(file, opts, head);
  const auto n_fields = static_cast<std::int64_t>(head.fields.size());

  // Resolve the requested columns; requests of the same column share one Column.
  std::vector<Column> cols;
  std::vector<std::int64_t> slot_of_request(request.columns.size(), -1);
  for (std::size_t q = 0; err.empty() && q < request.columns.size(); ++q) {
    const std::string& want = request.columns[q];
    const std::string t(trim(want));
    std::int64_t index = -1;
    if (is_digits(t)) {
      const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), index);
      if (ec != std::errc() || index >= n_fields) index = -2;
    } else {
      for (std::size_t j = 0; j < head.fields.size(); ++j) {
        if (head.fields[j] != t) continue;
        if (index >= 0) {
          err = path + ": column '" + shown(t) + "' is ambiguous: the header names columns " +
                std::to_string(index) + " and " + std::to_string(j) + " so (rename one)";
          break;
        }
        index = static_cast<std::int64_t>(j);
      }
    }
    if (!err.empty()) break;
    if (index < 0) {
      if (contains(request.optional, want)) continue;  // absent: index -1, no values
      err = index == -2 ? path + ": column " + t + " is out of range: the file has " + std::to_string(n_fields) +
                              " columns (0-based indices 0 to " + std::to_string(n_fields - 1) + ")"
                        : path + ": no column '" + shown(t) + "' in the header; its columns: " + name_list(head.fields);
      break;
    }
    for (std::size_t c = 0; c < cols.size(); ++c)
      if (cols[c].index == index) slot_of_request[q] = static_cast<std::int64_t>(c);
    if (slot_of_request[q] >= 0) {
      cols[static_cast<std::size_t>(slot_of_request[q])].as_factor |= contains(request.as_factor, want);
      continue;
    }
    Column col;
    col.name = head.fields[static_cast<std::size_t>(index)];
    col.index = index;
    col.as_factor = contains(request.as_factor, want);
    const auto fx = request.fixed_levels.find(want);
    if (fx != request.fixed_levels.end()) col.fixed = &fx->second;
    slot_of_request[q] = static_cast<std::int64_t>(cols.size());
    cols.push_back(std::move(col));
  }
  comm.check(err.empty(), err);

  // Slots in file order (ties of a problem on one line go to the leftmost column).
  {
    std::vector<std::size_t> order(cols.size());
    for (std::size_t c = 0; c < order.size(); ++c) order[c] = c;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cols[a].index < cols[b].index; });
    std::vector<std::size_t> new_slot(cols.size());
    std::vector<Column> sorted;
    sorted.reserve(cols.size());
    for (std::size_t k = 0; k < order.size(); ++k) {
      new_slot[order[k]] = k;
      sorted.push_back(std::move(cols[order[k]]));
    }
    cols = std::move(sorted);
    for (std::int64_t& s : slot_of_request)
      if (s >= 0) s = static_cast<std::int64_t>(new_slot[static_cast<std::size_t>(s)]);
  }
  // Fixed levels: by value when every level is a canonical number (a numeric factor).
  for (Column& col : cols) {
    if (!col.fixed) continue;
    const std::vector<std::string>& lv = *col.fixed;
    col.fixed_numeric = !lv.empty() && std::all_of(lv.begin(), lv.end(), [](const std::string& s) {
      double v = 0.0;
      return parse_double(s, v) && !std::isnan(v) && number_name(v) == s;
    });
    for (std::size_t j = 0; j < lv.size(); ++j) {
      if (col.fixed_numeric) {
        double v = 0.0;
        parse_double(lv[j], v);
        col.fixed_value.emplace(v == 0.0 ? 0.0 : v, static_cast<std::int32_t>(j));
      } else {
        col.fixed_text.emplace(std::string_view(lv[j]), static_cast<std::int32_t>(j));
      }
    }
  }

  Reader rd(opts, cols, n_fields, std::max(opts.threads, 1));
  rd.slot_of_field.assign(static_cast<std::size_t>(n_fields), -1);
  for (std::size_t c = 0; c < cols.size(); ++c)
    rd.slot_of_field[static_cast<std::size_t>(cols[c].index)] = static_cast<std::int32_t>(c);
  rd.active.assign(cols.size(), 1);
  const Range mine = partition(file.size() - head.body_begin, comm.rank(), comm.size());
  std::int64_t lines = 0;
  std::string read_err = rd.pass(file, head.body_begin, mine, lines);
  if (!read_err.empty() && !rd.err.any()) rd.err = {-1, read_err};

  // A column that is text here but whose earlier numeric texts were not all interned:
  // read its fields again (local; the kind is settled: text).
  auto reread = [&](const std::vector<char>& which) {
    bool any = false;
    for (std::size_t c = 0; c < cols.size(); ++c)
      if (which[c]) {
        any = true;
        for (ThreadColumn& tc : cols[c].part) {
          tc = ThreadColumn{};
          tc.text = true;  // every field's text is interned
        }
      }
    if (!any || rd.err.any()) return;
    rd.active = which;
    rd.record_lines = false;
    rd.rows = 0;
    std::int64_t again = 0;
    const std::string e = rd.pass(file, head.body_begin, mine, again);
    if (!e.empty() && !rd.err.any()) rd.err = {-1, e};
  };
  {
    std::vector<char> which(cols.size(), 0);
    for (std::size_t c = 0; c < cols.size(); ++c) which[c] = cols[c].text && cols[c].incomplete;
    reread(which);
  }

  Frame frame;
  frame.source = path;
  const std::int64_t line0 = head.lines_before_body + comm.exscan_sum(lines);
  comm.check(!rd.err.any(), located(path, rd.err, line0));
  frame.n_rows = rd.rows;
  frame.first_row = comm.exscan_sum(frame.n_rows);
  frame.n_global = frame.n_rows;
  comm.allreduce_sum(&frame.n_global, 1);
  frame.line = std::move(rd.line);
  for (std::int64_t& l : frame.line) l += line0 + 1;

  // The exchange: per column, this rank's kind and levels (text levels; for a numeric
  // column read as a factor, its distinct values).
  std::string mine_msg;
  for (const Column& col : cols) {
    if (col.fixed) continue;
    if (col.text) {
      put(mine_msg, kText);
      put_list(mine_msg, col.levels.texts());
    } else if (col.as_factor) {
      const std::vector<std::string> v = distinct_numbers(col.values);
      put(mine_msg, kNumericFactor);
      put_list(mine_msg, v);
    } else {
      put(mine_msg, col.numbers ? kNumbers : kNoValue);  // no value: every field missing, or no rows
    }
  }
  const std::vector<std::string> all = comm.gather(mine_msg);
  // Root: the merged kinds and levels, and the columns that are text on some rank but
  // numbers on another (whose texts a second exchange collects).
  std::vector<std::uint64_t> kind(cols.size(), kNumbers);
  std::vector<std::vector<std::string>> levels(cols.size());
  std::vector<char> second(cols.size(), 0);
  std::string merged;
  if (comm.is_root()) {
    std::vector<Cursor> cur;
    for (const std::string& s : all) cur.push_back(Cursor{s});
    std::vector<std::vector<std::string>> text_levels(cols.size()), num_levels(cols.size());
    for (std::size_t c = 0; c < cols.size(); ++c) {
      if (cols[c].fixed) continue;
      bool text = false, numbers = false;
      for (Cursor& r : cur) {
        const std::uint64_t k = r.u64();
        if (k == kNoValue) continue;
        if (k == kNumbers) {
          numbers = true;
          continue;
        }
        if (r.list(k == kText ? text_levels[c] : num_levels[c]) > 0) (k == kText ? text : numbers) = true;
      }
      if (text) {
        kind[c] = kText;
        sort_text_levels(text_levels[c]);
        levels[c] = std::move(text_levels[c]);
        second[c] = numbers;
      } else if (cols[c].as_factor) {
        kind[c] = kNumericFactor;
        levels[c] = sort_numeric_levels(num_levels[c]);
      }
    }
    for (std::size_t c = 0; c < cols.size(); ++c) {
      if (cols[c].fixed) continue;
      put(merged, kind[c]);
      put(merged, static_cast<std::uint64_t>(second[c]));
      put_list(merged, levels[c]);
    }
  }
  comm.broadcast(merged);
  if (!comm.is_root()) {
    Cursor cur{merged};
    for (std::size_t c = 0; c < cols.size(); ++c) {
      if (cols[c].fixed) continue;
      kind[c] = cur.u64();
      second[c] = static_cast<char>(cur.u64());
      cur.list(levels[c]);
    }
  }

  // Second exchange (rare): columns that are text on some rank and numbers on another.
  if (std::any_of(second.begin(), second.end(), [](char s) { return s != 0; })) {
    std::vector<char> which(cols.size(), 0);
    for (std::size_t c = 0; c < cols.size(); ++c) which[c] = second[c] && !cols[c].text && cols[c].incomplete;
    reread(which);  // read again: the texts of this rank's numbers were not all interned
    std::string local_err = rd.err.any() ? located(path, rd.err, line0) : std::string();
    comm.check(local_err.empty(), local_err);
    std::string msg;
    for (std::size_t c = 0; c < cols.size(); ++c) {
      if (!second[c]) continue;
      const bool numbers_here = !cols[c].text || which[c];
      if (numbers_here)
        put_list(msg, cols[c].levels.texts());
      else
        put(msg, std::uint64_t{0});
    }
    const std::vector<std::string> texts = comm.gather(msg);
    std::string merged2;
    if (comm.is_root()) {
      std::vector<Cursor> cur;
      for (const std::string& s : texts) cur.push_back(Cursor{s});
      for (std::size_t c = 0; c < cols.size(); ++c) {
        if (!second[c]) continue;
        for (Cursor& r : cur) r.list(levels[c]);
        sort_text_levels(levels[c]);
        put_list(merged2, levels[c]);
      }
    }
    comm.broadcast(merged2);
    if (!comm.is_root()) {
      Cursor cur{merged2};
      for (std::size_t c = 0; c < cols.size(); ++c) {
        if (!second[c]) continue;
        levels[c].clear();
        cur.list(levels[c]);
      }
    }
  }

  // Codes into the merged levels (parallel over the rows).
  const int threads = std::max(opts.threads, 1);
  for (std::size_t c = 0; c < cols.size(); ++c) {
    Column& col = cols[c];
    if (col.fixed || kind[c] == kNumbers) continue;
    std::vector<std::int32_t>& codes = col.codes;
    const auto n = static_cast<std::int64_t>(codes.size());
    if (kind[c] == kText) {
      // Local level id -> index of its text in the sorted merged levels.
      std::vector<std::int32_t> to(col.levels.size());
      for (std::size_t j = 0; j < to.size(); ++j)
        to[j] = static_cast<std::int32_t>(std::lower_bound(levels[c].begin(), levels[c].end(), col.levels.texts()[j]) -
                                          levels[c].begin());
#pragma omp parallel for num_threads(threads) schedule(static)
      for (std::int64_t r = 0; r < n; ++r) {
        const std::int32_t id = codes[static_cast<std::size_t>(r)];
        codes[static_cast<std::size_t>(r)] = id < 0 ? -1 : to[static_cast<std::size_t>(id)];
      }
    } else {
      std::vector<double> lv(levels[c].size());
      for (std::size_t j = 0; j < lv.size(); ++j) parse_double(levels[c][j], lv[j]);
      const std::vector<double>& values = col.values;
#pragma omp parallel for num_threads(threads) schedule(static)
      for (std::int64_t r = 0; r < n; ++r) {
        const double v = values[static_cast<std::size_t>(r)];
        codes[static_cast<std::size_t>(r)] =
            std::isnan(v) ? -1
                          : static_cast<std::int32_t>(std::lower_bound(lv.begin(), lv.end(), v == 0.0 ? 0.0 : v) -
                                                      lv.begin());
      }
    }
  }

  // The columns, in request order (a column requested twice is copied).
  std::vector<char> moved(cols.size(), 0);
  std::vector<std::int64_t> last_use(cols.size(), -1);
  for (std::size_t q = 0; q < slot_of_request.size(); ++q)
    if (slot_of_request[q] >= 0) last_use[static_cast<std::size_t>(slot_of_request[q])] = static_cast<std::int64_t>(q);
  for (std::size_t q = 0; q < request.columns.size(); ++q) {
    FrameColumn out;
    const std::int64_t s = slot_of_request[q];
    if (s < 0) {  // an optional column the file does not have
      out.name = std::string(trim(request.columns[q]));
      const auto fx = request.fixed_levels.find(request.columns[q]);
      if (fx != request.fixed_levels.end()) {
        out.kind = FrameColumn::Kind::factor;
        out.levels = fx->second;
      }
      frame.columns.push_back(std::move(out));
      continue;
    }
    const auto c = static_cast<std::size_t>(s);
    Column& col = cols[c];
    const bool last = last_use[c] == static_cast<std::int64_t>(q);
    out.name = col.name;
    out.index = col.index;
    if (col.fixed) {
      out.kind = FrameColumn::Kind::factor;
      out.levels = *col.fixed;
      out.numeric_levels = col.fixed_numeric;
      out.codes = last ? std::move(col.codes) : col.codes;
    } else if (kind[c] == kNumbers) {
      out.values = last ? std::move(col.values) : col.values;
    } else {
      out.kind = FrameColumn::Kind::factor;
      out.numeric_levels = kind[c] == kNumericFactor;
      out.levels = last ? std::move(levels[c]) : levels[c];
      out.codes = last ? std::move(col.codes) : col.codes;
    }
    frame.columns.push_back(std::move(out));
  }
  return frame;
}

}  // namespace natgrad
