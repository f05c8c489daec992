// Reading assistant turns out of a trajectory's tokens (torch-free).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/trajectory.h"

namespace gr1 {

// Text of one assistant turn: its policy tokens decoded, without a trailing
// <|end|> / <eos> stop token (those close the turn; they are not turn text).
// `image_size` is the side of the square shown frame (model.image_size): it
// gives location tokens their pixel values (Tokenizer), so a box written as
// <loc_k> tokens reads as "[x1,y1,x2,y2]" in shown-frame pixels.
std::string turn_text(const std::vector<int32_t>& tokens, const TurnSpan& span, int image_size);

// All turn texts of a trajectory, in order (see turn_text).
std::vector<std::string> turn_texts(const Trajectory& t, int image_size);

// The box a turn requests, read leniently for cropping: the first
// "<box>[a,b,c,d]</box>" in the turn with four non-negative numbers, even if
// the turn's format is otherwise wrong (the format reward judges that). A
// bracketed list outside <box> tags is NOT a box (unlike the reference).
std::optional<Box> extract_box(std::string_view turn);

// A turn containing "<answer>" ends the trajectory.
bool is_answer_turn(std::string_view turn);

// The last box any turn requested (shown frame), if any.
std::optional<Box> last_box_shown(const Trajectory& t);

// Number of policy tokens of a trajectory.
int policy_token_count(const Trajectory& t);

}  // namespace gr1
