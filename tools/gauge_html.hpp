// The HTML report of `vkquant gauge MODEL --html OUT`: one self-contained
// file (inline CSS, inline script drawing SVG; nothing from the network) with
// the gauge's tables and plots, the artifact's precision policy (plan per
// KV head, predicted loss against bits beside the uniform settings), and bits
// per key coordinate against perplexity and KL to fp16 from a
// `vkquant ppl --compare --json` run.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

namespace vkq::cli {

// Reads the JSON of `vkquant ppl MODEL --text FILE --compare --json` (or of a
// single `ppl --json` run) and checks what the plot needs: every config with a
// name, a finite positive perplexity and key bits per coordinate. Throws
// FormatError naming the file and the problem.
nlohmann::json read_fidelity(const std::filesystem::path& path);

// The report for gauge_model()'s JSON; `fidelity` (read_fidelity's) draws
// the bits-against-perplexity and bits-against-KL plots, else the page says
// they need it.
std::string gauge_html(const nlohmann::ordered_json& gauge, const std::optional<nlohmann::json>& fidelity);

}  // namespace vkq::cli
