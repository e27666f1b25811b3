#include "otlp/otlp_model.hpp"

namespace telemetryd::otlp {

namespace {

struct ContentKey {
  std::string_view text;
  bool prefix;  // also every key that starts with it ("gen_ai.prompt.0.content")
};

// Where each comes from: OpenTelemetry GenAI semantic conventions (gen_ai.*, and their older
// gen_ai.prompt / gen_ai.completion attributes and gen_ai.content.* events' keys), OpenLLMetry
// (gen_ai.prompt.N.*, gen_ai.completion.N.*, traceloop.entity.*), OpenInference (input.value,
// output.value, llm.*_messages, llm.prompts, llm.prompt_template.*, retrieval.documents,
// embedding.embeddings, reranker.*documents, reranker.query), the Vercel AI SDK (ai.prompt*,
// ai.response.text/object/toolCalls, ai.toolCall.*) and Langfuse (langfuse.observation.input/
// output). Token counts, model names and ids all live under other keys.
constexpr ContentKey kGenAiKeys[] = {
    // after "gen_ai."
    {"input.messages", false},      {"output.messages", false},
    {"system_instructions", false}, {"prompt", true},
    {"completion", true},           {"tool.call.arguments", false},
    {"tool.call.result", false},    {"content.", true},
};
constexpr ContentKey kOtherKeys[] = {
    {"llm.input_messages", true},
    {"llm.output_messages", true},
    {"llm.prompts", true},
    {"llm.prompt_template.", true},
    {"input.value", false},
    {"output.value", false},
    {"retrieval.documents", true},
    {"embedding.embeddings", true},
    {"reranker.input_documents", true},
    {"reranker.output_documents", true},
    {"reranker.query", false},
    {"traceloop.entity.input", false},
    {"traceloop.entity.output", false},
    {"ai.prompt", true},
    {"ai.response.text", false},
    {"ai.response.object", false},
    {"ai.response.toolCalls", false},
    {"ai.toolCall.args", false},
    {"ai.toolCall.result", false},
    {"langfuse.observation.input", false},
    {"langfuse.observation.output", false},
};

template <std::size_t N>
bool matches(std::string_view key, const ContentKey (&table)[N]) {
  for (const ContentKey& entry : table) {
    if (entry.prefix ? key.starts_with(entry.text) : key == entry.text) return true;
  }
  return false;
}

}  // namespace

bool is_content_attribute(std::string_view key) {
  constexpr std::string_view kGenAi = "gen_ai.";
  if (key.starts_with(kGenAi)) return matches(key.substr(kGenAi.size()), kGenAiKeys);
  if (key.empty()) return false;
  switch (key.front()) {  // the first letters of kOtherKeys: most keys end here
    case 'a':
    case 'e':
    case 'i':
    case 'l':
    case 'o':
    case 'r':
    case 't':
      return matches(key, kOtherKeys);
    default:
      return false;
  }
}

}  // namespace telemetryd::otlp
