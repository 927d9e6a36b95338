using EdgeSlm.EdgeModule.Cli;
using EdgeSlm.EdgeModule.Gguf;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Llama;
using LLama;

namespace EdgeSlm.EdgeModule.Tests.Llama;

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

    [Fact]
    public void Generate_with_chat_answers_through_the_files_template_and_warns_without_one()
    {
        string plain = SyntheticDecoder.Cached(DecoderShape.TinyQwen2(), QuantType.Q8_0);
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-tests", $"chat-{Guid.NewGuid():N}.gguf");
        using (GgufFile original = GgufFile.Open(plain))
        {
            var writer = new GgufWriter();
            foreach ((string key, GgufValue value) in original.Metadata) writer.Add(key, value);
            writer.Add(ChatTemplate.MetadataKey, GgufValue.Of(QwenJinja));
            foreach (GgufTensorInfo tensor in original.Tensors) writer.AddTensor(tensor.Name, tensor.Type, tensor.Dimensions, original.TensorBytes(tensor).ToArray());
            writer.WriteTo(path);
        }
        try
        {
            string Run(string file, bool chat, string text, out string error)
            {
                var output = new StringWriter();
                var errors = new StringWriter();
                string[] args = chat ? ["generate", "--model", file, "--chat", "--max-tokens", "8", "--ignore-eos", text] : ["generate", "--model", file, "--max-tokens", "8", "--ignore-eos", text];
                Assert.Equal(0, CommandLine.Run(args, output, errors));
                error = errors.ToString();
                return output.ToString();
            }
            string formatted = ChatTemplate.ChatMl.Format([("user", "turn on the lights")]);
            Assert.Equal(Run(path, chat: false, formatted, out _), Run(path, chat: true, "turn on the lights", out string chatError));
            Assert.DoesNotContain("raw", chatError);
            Run(plain, chat: true, "turn on the lights", out string warning);
            Assert.Contains("has no 'tokenizer.chat_template'; the text goes in raw", warning);

            var info = new StringWriter();
            Assert.Equal(0, CommandLine.Run(["info", path], info, new StringWriter()));
            Assert.Contains("chat template chatml", info.ToString());
        }
        finally
        {
            File.Delete(path);
        }
    }
}
