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
#include <string>
#include <vector>

namespace gr1 {

// The instruction of every user turn: the question, that one region may be
// requested as a box in <box> tags, the shown image size, that a crop of the
// box will follow and grounding may be repeated, and that the final answer
// goes in <answer> tags, with a one-line format example.
std::string instruction_text(const std::string& question, int shown_w, int shown_h);

// Tokens of the first user turn including <bos> and the trailing <|assistant|>.
std::vector<int32_t> first_user_turn(const std::string& question, int shown_w, int shown_h,
                                     int image_tokens);

// Tokens of a later user turn (after an assistant turn): [<|end|> if
// `close_assistant`] <|user|> INSTRUCTION <image>*n <|end|> <|assistant|>.
std::vector<int32_t> later_user_turn(const std::string& question, int shown_w, int shown_h,
                                     int image_tokens, bool close_assistant);

// True for tokens that end an assistant turn.
bool is_stop_token(int32_t token);

}  // namespace gr1
