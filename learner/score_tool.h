// `gr1 score --in FILE`: rewards of given turn texts, by the learner's code.
#pragma once
#include <iosfwd>
#include <string>
namespace gr1 {
// Reads JSON lines {"turns": [...], "solution", "dataset"} (optional "bboxs",
// "width", "height", "shown_width", "shown_height"; shown size defaults to
// width/height, i.e. boxes written in original pixels) from `in` and writes
// one JSON line per input: {"line", "format", "accuracy", "box_score" (null
// without a box or evidence), "reward"}, or {"line", "error"} for a bad line.
// Returns the number of bad lines.
int score_stream(std::istream& in, std::ostream& out);
// Opens `path` ("-" = stdin); returns the exit code (0 all good, 1 some bad, 2 unreadable).
int run_score(const std::string& path);
}  // namespace gr1
