// Hugging Face tokenizer.json BPE: byte-level (GPT-2, Llama 3, Qwen2) and
// SentencePiece-style (Llama 2, Mistral, TinyLlama, Gemma: characters with
// <0xNN> byte fallback, spaces as U+2581). The pipeline objects (normalizer,
// pre_tokenizer, decoder) are read by hf_pipeline.cpp; here the model, the
// vocabulary, the merges, the added tokens and bos/eos.
// - added_tokens: matched whole in the input before normalization (lstrip,
//   rstrip, single_word and a normalized token the normalizer would change
//   are refused); special ones decode to "".
// - post_processor (BOS templates) is ignored on purpose: encode() never adds BOS/EOS.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "hf_pipeline.hpp"
#include "internal.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/mapped_file.hpp"

namespace vkq {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string show(std::string_view s) {
  std::string out = "'";
  out.append(s.substr(0, 64));
  if (s.size() > 64) out += "...";
  return out + "'";
}

class Reader {
 public:
  explicit Reader(fs::path path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw FormatError(path_, key + ": " + what);
  }

  json parse() const {
    json j = read_json_file(path_, path_.filename().string());
    if (!j.is_object()) throw FormatError(path_, "not a JSON object");
    return j;
  }

  // The member `name` of object `j` (at `key`); nullptr when absent or null.
  static const json* member(const json& j, const char* name) {
    const auto it = j.find(name);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  const json& object(const json& j, const char* name, const std::string& key) const {
    const json* m = member(j, name);
    if (!m || !m->is_object()) fail(key, m ? "not an object" : "missing");
    return *m;
  }
  std::string string(const json& j, const std::string& key) const {
    if (!j.is_string()) fail(key, "not a string");
    return j.get<std::string>();
  }
  bool boolean(const json& j, const char* name, const std::string& key, bool fallback) const {
    const json* m = member(j, name);
    if (!m) return fallback;
    if (!m->is_boolean()) fail(key, "not a boolean");
    return m->get<bool>();
  }
  std::int32_t id(const json& j, const std::string& key) const {
    if (!j.is_number_integer()) fail(key, "not an integer token id");
    if (j.is_number_unsigned() ? j.get<std::uint64_t>() > std::uint64_t(INT32_MAX) : j.get<std::int64_t>() < 0)
      fail(key, "token id " + j.dump() + " is outside [0, 2^31)");
    return j.get<std::int32_t>();
  }

 private:
  fs::path path_;
};

// bos_token / eos_token of tokenizer_config.json: a string, an AddedToken
// object with "content", or null.
std::optional<std::string> config_token(const Reader& r, const json& cfg, const char* name, bool& present) {
  present = cfg.contains(name);
  const json* m = Reader::member(cfg, name);
  if (!m) return std::nullopt;
  if (m->is_string()) return m->get<std::string>();
  if (m->is_object() && m->contains("content")) return r.string(m->at("content"), std::string(name) + ".content");
  r.fail(name, "expected a string, an object with \"content\", or null");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_json(const fs::path& path) {
  const Reader r(path);
  const json root = r.parse();
  const json& model = r.object(root, "model", "model");
  const std::string type = r.string(model.contains("type") ? model.at("type") : json(), "model.type");
  if (type != "BPE") r.fail("model.type", "unsupported model \"" + type + "\" (expected \"BPE\")");
  for (const char* name : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* m = Reader::member(model, name);
    if (m && (!m->is_string() || !m->get<std::string>().empty()))
      r.fail(std::string("model.") + name, "not supported");
  }
  if (const json* dropout = Reader::member(model, "dropout"); dropout && !(dropout->is_number() && *dropout == 0))
    r.fail("model.dropout", dropout->dump() + " is not supported (BPE dropout is random)");
  const tok::HfFail fail = [&r](const std::string& key, const std::string& what) { r.fail(key, what); };
  tok::BpeSpec s;
  s.kind = "hf-bpe";
  tok::read_hf_normalizer(Reader::member(root, "normalizer"), fail, s);
  tok::read_hf_pre_tokenizer(Reader::member(root, "pre_tokenizer"), fail, s);
  s.byte_fallback = r.boolean(model, "byte_fallback", "model.byte_fallback", false);
  if (s.byte_fallback && s.byte_level)
    r.fail("model.byte_fallback", "not supported with a ByteLevel pre-tokenizer (a byte-level vocabulary needs no byte fallback)");
  s.fuse_unk = r.boolean(model, "fuse_unk", "model.fuse_unk", false);
  tok::read_hf_decoder(Reader::member(root, "decoder"), fail, s.byte_fallback, s);
  s.ignore_merges = r.boolean(model, "ignore_merges", "model.ignore_merges", false);

  // Vocabulary and added tokens -> one id table.
  const json& vocab = r.object(model, "vocab", "model.vocab");
  const json* added = Reader::member(root, "added_tokens");
  if (added && !added->is_array()) r.fail("added_tokens", "not an array");
  struct Entry {
    std::string text;
    std::int32_t id;
    bool special;
  };
  std::vector<Entry> added_entries;
  std::int64_t max_id = -1;
  std::unordered_map<std::string, std::int32_t> vocab_ids;
  vocab_ids.reserve(vocab.size());
  for (const auto& [text, v] : vocab.items()) {
    const std::int32_t id = r.id(v, "model.vocab[" + show(text) + "]");
    vocab_ids.emplace(text, id);
    max_id = std::max<std::int64_t>(max_id, id);
  }
  if (added) {
    for (std::size_t i = 0; i < added->size(); ++i) {
      const std::string key = "added_tokens[" + std::to_string(i) + "]";
      const json& t = (*added)[i];
      if (!t.is_object()) r.fail(key, "not an object");
      Entry e;
      e.id = r.id(t.contains("id") ? t.at("id") : json(), key + ".id");
      e.text = r.string(t.contains("content") ? t.at("content") : json(), key + ".content");
      if (e.text.empty()) r.fail(key + ".content", "empty");
      e.special = r.boolean(t, "special", key + ".special", false);
      for (const char* flag : {"lstrip", "rstrip", "single_word"})
        if (r.boolean(t, flag, key + "." + flag, false)) r.fail(key + "." + flag, "true is not supported");
      // A normalized token is matched in normalized text: the same only when
      // the normalizer leaves it alone and adds nothing around it.
      const bool forms_only = std::all_of(s.normalizer.begin(), s.normalizer.end(), [](const tok::NormStep& n) {
        return n.kind != tok::NormStep::Kind::prepend && n.kind != tok::NormStep::Kind::replace;
      });
      if (r.boolean(t, "normalized", key + ".normalized", !e.special) && !s.normalizer.empty() &&
          (!forms_only || tok::apply_normalizer(s.normalizer, e.text) != e.text))
        r.fail(key + ".normalized", "true is not supported with normalizer " + s.norm_name);
      max_id = std::max<std::int64_t>(max_id, e.id);
      added_entries.push_back(std::move(e));
    }
  }
  const std::size_t count = vocab.size() + added_entries.size();
  if (max_id < 0) r.fail("model.vocab", "no tokens");
  if (std::uint64_t(max_id) >= 2 * std::uint64_t(count) + 1024)
    r.fail("model.vocab", "token ids up to " + std::to_string(max_id) + " for only " + std::to_string(count) +
                              " tokens");
  const auto n = std::size_t(max_id) + 1;
  s.texts.assign(n, {});
  s.pieces.assign(n, tok::Piece::empty);
  s.byte_values.assign(n, 0);
  s.mergeable.assign(n, false);
  std::vector<bool> used(n, false);
  for (const auto& [text, id] : vocab_ids) {
    const auto i = std::size_t(id);
    if (used[i]) r.fail("model.vocab[" + show(text) + "]", "id " + std::to_string(id) + " is also " + show(s.texts[i]));
    used[i] = true;
    s.texts[i] = text;
    s.pieces[i] = s.byte_level ? tok::Piece::byte_level : tok::Piece::spm;
    if (const auto b = s.byte_fallback ? tok::parse_byte_token(text) : std::nullopt) {
      s.pieces[i] = tok::Piece::byte;
      s.byte_values[i] = *b;
    }
    s.mergeable[i] = true;
  }
  for (std::size_t k = 0; k < added_entries.size(); ++k) {
    const Entry& e = added_entries[k];
    const std::string key = "added_tokens[" + std::to_string(k) + "]";
    const auto i = std::size_t(e.id);
    if (const auto it = vocab_ids.find(e.text); it != vocab_ids.end() && it->second != e.id)
      r.fail(key, show(e.text) + " has id " + std::to_string(e.id) + " but model.vocab gives it " +
                      std::to_string(it->second));
    if (used[i] && s.texts[i] != e.text)
      r.fail(key + ".id", "id " + std::to_string(e.id) + " is also " + show(s.texts[i]));
    used[i] = true;
    s.texts[i] = e.text;
    s.pieces[i] = e.special ? tok::Piece::empty : tok::Piece::raw;
    s.specials.emplace_back(e.text, e.id);
    s.special.resize(n);
    s.special[i] = e.special;
  }

  // Merges: "a b" strings (older files) or ["a", "b"] pairs (newer files).
  const json* merges = Reader::member(model, "merges");
  if (merges && !merges->is_array()) r.fail("model.merges", "not an array");
  if (merges) {
    s.merges.reserve(merges->size());
    for (std::size_t k = 0; k < merges->size(); ++k) {
      const std::string key = "model.merges[" + std::to_string(k) + "]";
      const json& m = (*merges)[k];
      std::string a, b;
      if (m.is_string()) {
        const std::string t = m.get<std::string>();
        const std::size_t sp = t.size() > 1 ? t.find(' ', 1) : std::string::npos;
        if (sp == std::string::npos) r.fail(key, "expected two tokens separated by a space, got " + show(t));
        a = t.substr(0, sp);
        b = t.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2) {
        a = r.string(m[0], key + "[0]");
        b = r.string(m[1], key + "[1]");
      } else {
        r.fail(key, "expected \"a b\" or [\"a\", \"b\"]");
      }
      const auto ia = vocab_ids.find(a), ib = vocab_ids.find(b);
      if (ia == vocab_ids.end()) r.fail(key, "unknown token " + show(a));
      if (ib == vocab_ids.end()) r.fail(key, "unknown token " + show(b));
      if (!vocab_ids.contains(a + b)) r.fail(key, "merged token " + show(a + b) + " is not in model.vocab");
      s.merges.emplace_back(ia->second, ib->second);
    }
  }
  if (const json* unk = Reader::member(model, "unk_token")) {
    const std::string t = r.string(*unk, "model.unk_token");
    const auto it = vocab_ids.find(t);
    if (it == vocab_ids.end()) r.fail("model.unk_token", show(t) + " is not in model.vocab");
    s.unk = it->second;
  }

  // bos / eos.
  auto token_id = [&](const std::string& t) -> std::optional<std::int32_t> {
    for (const Entry& e : added_entries)
      if (e.text == t) return e.id;
    const auto it = vocab_ids.find(t);
    return it == vocab_ids.end() ? std::nullopt : std::optional<std::int32_t>(it->second);
  };
  auto by_name = [&](std::initializer_list<const char*> names) -> std::optional<std::int32_t> {
    for (const char* name : names)
      for (const Entry& e : added_entries)
        if (e.text == name) return e.id;
    return std::nullopt;
  };
  s.bos = by_name({"<|begin_of_text|>", "<s>", "<|startoftext|>"});
  s.eos = by_name({"<|end_of_text|>", "<|endoftext|>", "</s>"});
  const fs::path config_path = path.parent_path() / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    const Reader cr(config_path);
    const json cfg = cr.parse();
    for (auto [name, slot] : {std::pair{"bos_token", &s.bos}, std::pair{"eos_token", &s.eos}}) {
      bool present = false;
      const auto t = config_token(cr, cfg, name, present);
      if (!present) continue;
      *slot = std::nullopt;
      if (!t) continue;
      *slot = token_id(*t);
      if (!*slot) cr.fail(name, show(*t) + " is not a token of " + path.string());
    }
    // add_bos_token false: the BOS token exists but is not put before a text
    // (what bos() means to run/ppl); appending EOS to every text is not implemented.
    if (!cr.boolean(cfg, "add_bos_token", "add_bos_token", true)) s.bos = std::nullopt;
    if (cr.boolean(cfg, "add_eos_token", "add_eos_token", false)) cr.fail("add_eos_token", "true is not supported");
  }
  return tok::make_bpe_tokenizer(std::move(s));
}

}  // namespace vkq
