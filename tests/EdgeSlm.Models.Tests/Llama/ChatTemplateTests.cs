using EdgeSlm.Models.Llama;
using LLama;

namespace EdgeSlm.Models.Tests.Llama;

/// <summary>Chat templates: recognised as llama.cpp recognises them, formatted as it formats them.</summary>
public sealed class ChatTemplateTests
{
    private const string QwenJinja = "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";
    private const string Llama3Jinja = "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

    [Theory]
    [InlineData(QwenJinja, "chatml")]
    [InlineData(Llama3Jinja, "llama3")]
    public void Formatting_equals_llama_cpp_for_the_same_template(string jinja, string name)
    {
        ChatTemplate template = ChatTemplate.Recognise(jinja)!;
        Assert.Equal(name, template.Name);
        (string, string)[] messages = [("system", "You are a home assistant."), ("user", "  turn on the lights "), ("assistant", "Done."), ("user", "and the radio")];

        var theirs = new LLamaTemplate(jinja) { AddAssistant = true };
        foreach ((string role, string content) in messages) theirs.Add(role, content);
        string expected = System.Text.Encoding.UTF8.GetString(theirs.Apply());
        Assert.Equal(expected, template.Format(messages));
    }

    [Fact]
    public void An_unknown_template_is_not_recognised()
    {
        Assert.Null(ChatTemplate.Recognise("[INST] {{ message }} [/INST]"));
        Assert.Null(ChatTemplate.Recognise(null));
    }

}
