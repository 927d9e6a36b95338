using System.Text;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// Chat turns into a prompt, for the templates recognised in <c>tokenizer.chat_template</c> the way llama.cpp's
/// <c>llama_chat_apply_template</c> recognises them (by what the Jinja text spells, not by running it): ChatML
/// (Qwen2.5, SmolLM2: <c>&lt;|im_start|&gt;</c>) and Llama 3 (<c>&lt;|start_header_id|&gt;</c>, contents trimmed).
/// BOS is the tokenizer's to add.
/// </summary>
public sealed class ChatTemplate
{
    public const string MetadataKey = "tokenizer.chat_template";

    public static readonly ChatTemplate ChatMl = new("chatml");
    public static readonly ChatTemplate Llama3 = new("llama3");

    private ChatTemplate(string name) => Name = name;

    public string Name { get; }

    /// <summary>The template <paramref name="jinja"/> spells, or null when it is none of the known ones.</summary>
    public static ChatTemplate? Recognise(string? jinja) =>
        jinja is null ? null
        : jinja.Contains("<|im_start|>", StringComparison.Ordinal) ? ChatMl
        : jinja.Contains("<|start_header_id|>", StringComparison.Ordinal) && jinja.Contains("<|end_header_id|>", StringComparison.Ordinal) ? Llama3
        : null;

    /// <summary>The prompt for <paramref name="messages"/> (role, content), ending with the assistant's turn opened.</summary>
    public string Format(IReadOnlyList<(string Role, string Content)> messages, bool addAssistant = true)
    {
        var text = new StringBuilder();
        foreach ((string role, string content) in messages)
        {
            if (this == ChatMl)
            {
                text.Append("<|im_start|>").Append(role).Append('\n').Append(content).Append("<|im_end|>\n");
            }
            else
            {
                text.Append("<|start_header_id|>").Append(role).Append("<|end_header_id|>\n\n").Append(content.Trim()).Append("<|eot_id|>");
            }
        }
        if (addAssistant)
        {
            text.Append(this == ChatMl ? "<|im_start|>assistant\n" : "<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
        return text.ToString();
    }
}
