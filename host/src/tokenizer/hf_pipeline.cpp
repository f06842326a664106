// tokenizer.json normalizers, pre-tokenizers and decoders (see hf_pipeline.hpp).
#include "hf_pipeline.hpp"

#include "vkquant/error.hpp"

namespace vkq::tok {

namespace {

using nlohmann::json;

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";
constexpr std::string_view kGpt2Pattern = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kLlama3Pattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
constexpr std::string_view kQwen2Pattern =
    R"re((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";

std::string show(std::string_view s) {
  std::string out = "'";
  out.append(s.substr(0, 64));
  if (s.size() > 64) out += "...";
  return out + "'";
}

// Small typed accessors that report through fail().
class Obj {
 public:
  Obj(const json& j, std::string key, const HfFail& fail) : j_(j), key_(std::move(key)), fail_(fail) {
    if (!j.is_object()) die(key_, "not an object");
  }
  [[noreturn]] void die(const std::string& key, const std::string& what) const {
    fail_(key, what);
    throw Error(key + ": " + what);  // fail_ throws first
  }
  const std::string& key() const { return key_; }
  const HfFail& fail() const { return fail_; }
  std::string sub(const char* name) const { return key_ + "." + name; }
  const json* member(const char* name) const {
    const auto it = j_.find(name);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  std::string type() const { return string("type"); }
  std::string string(const char* name) const {
    const json* m = member(name);
    if (!m || !m->is_string()) die(sub(name), m ? "not a string" : "missing");
    return m->get<std::string>();
  }
  std::optional<std::string> opt_string(const char* name) const {
    if (!member(name)) return std::nullopt;
    return string(name);
  }
  bool boolean(const char* name, bool fallback) const {
    const json* m = member(name);
    if (!m) return fallback;
    if (!m->is_boolean()) die(sub(name), "not a boolean");
    return m->get<bool>();
  }
  const json& array(const char* name) const {
    const json* m = member(name);
    if (!m || !m->is_array()) die(sub(name), m ? "not an array" : "missing");
    return *m;
  }
  // pattern: {"String": s}; a Regex pattern is refused.
  std::string string_pattern() const {
    const json* p = member("pattern");
    if (!p || !p->is_object()) die(sub("pattern"), p ? "not an object" : "missing");
    const Obj pat(*p, sub("pattern"), fail_);  
    if (pat.member("Regex")) die(pat.sub("Regex"), "a regex pattern is not supported here (only String)");
    return pat.string("String");
  }

 private:
  const json& j_;
  std::string key_;
  HfFail fail_;
};

void add_normalizer(const Obj& n, BpeSpec& s, std::vector<std::string>& names) {
  using K = NormStep::Kind;
  const std::string type = n.type();
  if (type == "Sequence") {
    const json& list = n.array("normalizers");
    for (std::size_t i = 0; i < list.size(); ++i)
      add_normalizer(Obj(list[i], n.sub("normalizers") + "[" + std::to_string(i) + "]", n.fail()), s, names);
    return;
  }
  NormStep step;
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.kind = type == "NFC" ? K::nfc : type == "NFD" ? K::nfd : type == "NFKC" ? K::nfkc : K::nfkd;
    names.push_back(type);
  } else if (type == "Prepend") {
    step.kind = K::prepend;
    step.a = n.string("prepend");
    names.push_back("prepend");
  } else if (type == "Replace") {
    step.kind = K::replace;
    step.a = n.string_pattern();
    if (step.a.empty()) n.die(n.sub("pattern.String"), "empty");
    step.b = n.string("content");
    names.push_back("replace");
  } else {
    n.die(n.sub("type"), "\"" + type + "\" is not supported (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, Sequence)");
  }
  s.normalizer.push_back(std::move(step));
}

// ByteLevel's options; `after_split`: it follows a Split in a Sequence.
void read_byte_level(const Obj& b, bool in_sequence, bool after_split, BpeSpec& s) {
  s.byte_level = true;
  s.add_prefix_space = b.boolean("add_prefix_space", true);
  s.prefix_each_word = in_sequence;
  const bool regex = b.boolean("use_regex", true);
  if (after_split && regex) b.die(b.sub("use_regex"), "true after a Split is not supported (two regex splits)");
  if (!after_split) s.split = regex ? Split::gpt2 : Split::none;
}

void read_split(const Obj& sp, BpeSpec& s) {
  const json* pattern = sp.member("pattern");
  if (!pattern || !pattern->is_object()) sp.die(sp.sub("pattern"), pattern ? "not an object" : "missing");
  const Obj pat(*pattern, sp.sub("pattern"), sp.fail());
  if (!pat.member("Regex")) sp.die(pat.sub("Regex"), "missing (a String split pattern is not supported)");
  const std::string p = pat.string("Regex");
  if (p == kGpt2Pattern) {
    s.split = Split::gpt2;
  } else if (p == kLlama3Pattern) {
    s.split = Split::llama3;
  } else if (p == kQwen2Pattern) {
    s.split = Split::qwen2;
  } else {
    sp.die(pat.sub("Regex"), show(p) + " is not supported (known: the GPT-2, Llama 3 and Qwen2 patterns)");
  }
  const std::string behavior = sp.string("behavior");
  if (behavior != "Isolated") sp.die(sp.sub("behavior"), "\"" + behavior + "\" is not supported (expected Isolated)");
  if (sp.boolean("invert", false)) sp.die(sp.sub("invert"), "true is not supported");
}

void read_metaspace(const Obj& m, BpeSpec& s) {
  Metaspace ms;
  ms.replacement = m.string("replacement");
  if (ms.replacement.empty()) m.die(m.sub("replacement"), "empty");
  if (const auto rep = m.opt_string("str_rep"); rep && *rep != ms.replacement)
    m.die(m.sub("str_rep"), "a str_rep other than the replacement is not supported");
  if (const auto scheme = m.opt_string("prepend_scheme")) {
    if (*scheme == "always") {
      ms.prepend = Metaspace::Prepend::always;
    } else if (*scheme == "first") {
      ms.prepend = Metaspace::Prepend::first;
    } else if (*scheme == "never") {
      ms.prepend = Metaspace::Prepend::never;
    } else {
      m.die(m.sub("prepend_scheme"), "\"" + *scheme + "\" is not supported (always, first or never)");
    }
  } else {
    ms.prepend = m.boolean("add_prefix_space", true) ? Metaspace::Prepend::always : Metaspace::Prepend::never;
  }
  ms.split = m.boolean("split", true);
  s.byte_level = false;
  s.metaspace = std::move(ms);
}

}  // namespace

void read_hf_normalizer(const json* normalizer, const HfFail& fail, BpeSpec& s) {
  s.normalizer.clear();
  s.norm_name = "none";
  if (!normalizer) return;
  std::vector<std::string> names;
  add_normalizer(Obj(*normalizer, "normalizer", fail), s, names);
  std::string joined;
  for (const std::string& n : names) joined += (joined.empty() ? "" : "+") + n;
  if (!joined.empty()) s.norm_name = joined;
}

void read_hf_pre_tokenizer(const json* pre_tokenizer, const HfFail& fail, BpeSpec& s) {
  if (!pre_tokenizer) {  // SentencePiece-style: the normalizer did the work
    s.byte_level = false;
    s.pre_name = "none";
    return;
  }
  const Obj pt(*pre_tokenizer, "pre_tokenizer", fail);
  const std::string type = pt.type();
  if (type == "ByteLevel") {
    read_byte_level(pt, false, false, s);
  } else if (type == "Metaspace") {
    read_metaspace(pt, s);
  } else if (type == "Sequence") {
    const json& list = pt.array("pretokenizers");
    auto item = [&](std::size_t i) {
      return Obj(list[i], pt.sub("pretokenizers") + "[" + std::to_string(i) + "]", fail);
    };
    if (list.size() == 1 && item(0).type() == "ByteLevel") {
      read_byte_level(item(0), true, false, s);
    } else if (list.size() == 2 && item(0).type() == "Split" && item(1).type() == "ByteLevel") {
      read_split(item(0), s);
      read_byte_level(item(1), true, true, s);
    } else {
      std::string types;
      for (std::size_t i = 0; i < list.size(); ++i) types += (i ? ", " : "") + item(i).type();
      pt.die(pt.sub("pretokenizers"), "[" + types + "] is not supported (expected [Split, ByteLevel] or [ByteLevel])");
    }
  } else {
    pt.die(pt.sub("type"), "unsupported pre-tokenizer \"" + type + "\" (expected ByteLevel, Metaspace or Sequence)");
  }
  s.pre_name = s.byte_level ? split_name(s.split) : "metaspace";
}

void read_hf_decoder(const json* decoder, const HfFail& fail, bool byte_fallback, BpeSpec& s) {
  if (!decoder) fail("decoder", s.byte_level ? "expected a ByteLevel decoder" : "missing");
  const Obj d(*decoder, "decoder", fail);
  const std::string type = d.type();
  if (s.byte_level) {
    if (type != "ByteLevel") d.die("decoder", "expected a ByteLevel decoder, not \"" + type + "\"");
    return;
  }
  bool has_byte_fallback = false, has_replace = false;
  auto step = [&](const Obj& st) {
    const std::string t = st.type();
    if (t == "ByteFallback") {
      has_byte_fallback = true;
    } else if (t == "Fuse") {
    } else if (t == "Replace") {
      if (st.string_pattern() != kSpmSpace || st.string("content") != " ")
        st.die(st.key(), "only Replace(\"\xE2\x96\x81\", \" \") is supported");
      has_replace = true;
    } else if (t == "Strip") {
      const json* start = st.member("start");
      const json* stop = st.member("stop");
      if (st.string("content") != " ") st.die(st.sub("content"), "only \" \" is supported");
      if (!start || !start->is_number_integer() || start->get<std::int64_t>() < 0 || start->get<std::int64_t>() > 1)
        st.die(st.sub("start"), "only 0 or 1 is supported");
      if (!stop || !stop->is_number_integer() || stop->get<std::int64_t>() != 0)
        st.die(st.sub("stop"), "only 0 is supported");
      s.strip_first_space = start->get<std::int64_t>() == 1;
    } else {
      st.die(st.sub("type"), "\"" + t + "\" is not supported in a SentencePiece-style decoder");
    }
  };
  if (type == "Metaspace") {
    if (d.string("replacement") != kSpmSpace) d.die(d.sub("replacement"), "only U+2581 is supported");
    const auto scheme = d.opt_string("prepend_scheme");
    s.strip_first_space = scheme ? *scheme != "never" : d.boolean("add_prefix_space", true);
    has_replace = true;
  } else if (type == "Sequence") {
    const json& list = d.array("decoders");
    for (std::size_t i = 0; i < list.size(); ++i)
      step(Obj(list[i], d.sub("decoders") + "[" + std::to_string(i) + "]", fail));
  } else {
    step(d);
  }
  if (!has_replace) d.die("decoder", "no Replace(\"\xE2\x96\x81\", \" \") step: U+2581 would not decode to a space");
  if (byte_fallback && !has_byte_fallback)
    d.die("decoder", "a byte_fallback model needs a ByteFallback decoder step");
  if (s.metaspace && s.metaspace->replacement != kSpmSpace)
    d.die("pre_tokenizer.replacement", "only U+2581 is supported (the decoder maps it back to a space)");
}

}  // namespace vkq::tok
