// The user-turn text and token layout shared by rollouts and evaluation.
//
// Sequence of one trajectory (every user turn carries the same instruction):
//   <bos> <|user|> INSTRUCTION <image>*n <|end|> <|assistant|> POLICY... [<|end|>]
//         <|user|> INSTRUCTION <image>*n (crop) <|end|> <|assistant|> POLICY... ...
// The question comes before the image so image tokens can attend to it.
// An assistant turn stops at a stop token (</box>, </answer>, <|end|>, <eos>)
// or after max_new_tokens; when the policy did not itself emit <|end|>, the
// system inserts it (no gradient).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gr1 {

// Which instruction the policy is given (RolloutOptions::mode).
//   kGrounded: boxes may be requested; crops follow; several turns.
//   kDirect:   the no-grounding baseline: no offer of a box, the answer comes
//              from the whole image in a single assistant turn.
enum class PromptMode { kGrounded, kDirect };

// "grounded" / "direct" -> mode; nullopt for any other name.
std::optional<PromptMode> prompt_mode_from_name(std::string_view name);
std::string_view prompt_mode_name(PromptMode mode);

// The instruction of a user turn.
// kGrounded (every user turn): the question, that one region may be requested
// as a box in <box> tags, the shown image size, that a crop of the box will
// follow and grounding may be repeated, and that the final answer goes in
// <answer> tags, with a one-line format example.
// kDirect (the only user turn): the question, the shown image size, that the
// answer is given from the whole image in <answer> tags, with the one-line
// answer-turn format example. No box is mentioned.
std::string instruction_text(const std::string& question, int shown_w, int shown_h,
                             PromptMode mode = PromptMode::kGrounded);

// Tokens of the first user turn including <bos> and the trailing <|assistant|>.
std::vector<int32_t> first_user_turn(const std::string& question, int shown_w, int shown_h,
                                     int image_tokens, PromptMode mode = PromptMode::kGrounded);

// Tokens of a later user turn (after an assistant turn): [<|end|> if
// `close_assistant`] <|user|> INSTRUCTION <image>*n <|end|> <|assistant|>.
// Grounded mode only: a direct trajectory has exactly one user turn.
std::vector<int32_t> later_user_turn(const std::string& question, int shown_w, int shown_h,
                                     int image_tokens, bool close_assistant);

// True for tokens that end an assistant turn.
bool is_stop_token(int32_t token);

}  // namespace gr1
