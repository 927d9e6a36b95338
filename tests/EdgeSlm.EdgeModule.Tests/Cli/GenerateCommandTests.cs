using EdgeSlm.EdgeModule.Cli;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.EdgeModule.Tests.Cli;

/// <summary><c>edgeslm generate</c> and <c>edgeslm info</c> on synthetic decoders.</summary>
public sealed class GenerateCommandTests
{
    /// <summary>Qwen2.5's ChatML template, as its GGUF files carry it.</summary>
    private const string ChatMlJinja = "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

    [Fact]
    public void Generate_prints_only_the_greedy_reply_and_speeds_on_stderr()
    {
        string path = SyntheticDecoder.Cached(DecoderShape.TinyQwen2(tied: false), QuantType.Q4_0);
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandLine.Run(["generate", "--model", path, "--max-tokens", "12", "--threads", "2", "--ignore-eos", "Turn on the kitchen lights"], output, error);
        Assert.Equal(0, code);

        // The same continuation computed directly: prompt, then 12 greedy tokens.
        using LlamaModel model = LlamaModel.Load(path);
        ByteLevelBpeTokenizer tokenizer = ByteLevelBpeTokenizer.FromGguf(model.File);
        using var decoder = new LlamaDecoder(model, context: 64);
        var logits = new float[model.Config.VocabularySize];
        decoder.Prefill(tokenizer.Encode("Turn on the kitchen lights", addSpecial: true, parseSpecial: true), logits);
        var reply = new List<int>();
        for (int i = 0; i < 12; i++)
        {
            reply.Add(TokenSampler.ArgMax(logits));
            decoder.Decode(reply[^1], logits);
        }
        Assert.Equal(tokenizer.Decode(reply.ToArray()) + Environment.NewLine, output.ToString());
        Assert.Matches(@"^prompt: 5 tokens, [0-9.]+ tokens/s; generation: 12 tokens, [0-9.]+ tokens/s", error.ToString());
    }

    [Fact]
    public void Generate_and_info_work_with_a_sentencepiece_vocabulary()
    {
        string path = SyntheticDecoder.Cached(DecoderShape.TinyLlamaSentencePiece(), QuantType.Q8_0);
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["generate", "--model", path, "--max-tokens", "10", "--ignore-eos", "Wake me up at 7 am"], output, error));

        // BOS, then the prompt's pieces; the reply is each greedy token's piece (▁ printed as a space, as llama.cpp prints it).
        using LlamaModel model = LlamaModel.Load(path);
        var tokenizer = (SentencePieceTokenizer)model.CreateTokenizer();
        int[] prompt = tokenizer.Encode("Wake me up at 7 am", addSpecial: true, parseSpecial: true);
        Assert.Equal(SentencePieceVocabulary.BosId, prompt[0]);
        using var decoder = new LlamaDecoder(model, context: 64);
        var logits = new float[model.Config.VocabularySize];
        decoder.Prefill(prompt, logits);
        var reply = new List<byte>();
        var piece = new byte[64];
        for (int i = 0; i < 10; i++)
        {
            int next = TokenSampler.ArgMax(logits);
            reply.AddRange(piece.AsSpan(0, tokenizer.TokenBytes(next, piece)).ToArray());
            decoder.Decode(next, logits);
        }
        Assert.Equal(System.Text.Encoding.UTF8.GetString(reply.ToArray()) + Environment.NewLine, output.ToString());
        Assert.Matches($"^prompt: {prompt.Length} tokens, ", error.ToString());

        var info = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["info", path], info, new StringWriter()));
        Assert.Contains($"decoder: vocabulary {SentencePieceVocabulary.Size}", info.ToString());
        Assert.Contains("decoder: tokenizer llama (SentencePiece with byte fallback, space prefix yes), chat template none", info.ToString());
    }

    [Fact]
    public void Sampling_with_a_seed_repeats_and_another_seed_differs()
    {
        string path = SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q8_0);
        string Run(int seed)
        {
            var output = new StringWriter();
            Assert.Equal(0, CommandLine.Run(["generate", "--model", path, "--max-tokens", "16", "--temperature", "1.5", "--seed", seed.ToString(System.Globalization.CultureInfo.InvariantCulture), "--ignore-eos", "hello"], output, new StringWriter()));
            return output.ToString();
        }
        Assert.Equal(Run(1), Run(1));
        Assert.NotEqual(Run(1), Run(2));
    }

    [Fact]
    public void Info_describes_a_decoder_and_bad_input_is_one_line()
    {
        string path = SyntheticDecoder.Cached(DecoderShape.TinyQwen2(tied: true), QuantType.F16);
        var output = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["info", path], output, new StringWriter()));
        Assert.Contains("decoder: qwen2, 3.3 M parameters, 2 layers, hidden 64, 4 heads / 2 KV heads of 16, feed-forward 192", output.ToString());
        Assert.Contains("QKV bias yes, output tied to the token embedding", output.ToString());
        Assert.Contains("decoder: tokenizer gpt2 (pre-tokenizer qwen2)", output.ToString());

        var error = new StringWriter();
        Assert.Equal(CommandLine.ExitUsage, CommandLine.Run(["generate", "--model", path, "--temperature", "-1", "x"], new StringWriter(), error));
        Assert.Contains("--temperature must be a number of 0 or more", error.ToString());
        error = new StringWriter();
        Assert.Equal(CommandLine.ExitUsage, CommandLine.Run(["generate", "--model", path, "--context", "3", "a b c d e f"], new StringWriter(), error));
        Assert.Contains("leaves no room to generate", error.ToString());
        Assert.Single(error.ToString().TrimEnd().Split('\n'));
    }

    [Fact]
    public void Info_and_generate_say_which_matrices_are_converted_at_load_and_to_what()
    {
        // Untied Q4_K_M at hidden 256: q4_k and q6_k matrices become q8_0; the untied embedding (q4_k) stays as stored.
        string path = SyntheticDecoder.Cached(DecoderShape.TinyQwen2(tied: false, hidden: 256), WeightTypes.Q4_K_M);
        var output = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["info", path], output, new StringWriter()));
        string info = output.ToString();
        // Q4_K_M over 2 layers: q6_k for layer 1's attn_v and ffn_down (use_more_bits) and the output, q4_k elsewhere.
        Assert.Contains("decoder: converted at load: q4_k -> q8_0 12 (attn_q x2, attn_k x2, attn_v, attn_output x2, ffn_gate x2, ffn_up x2, ffn_down); q6_k -> q8_0 3 (attn_v, ffn_down, output);", info);
        Assert.Contains("token_embd.weight stays q4_k (rows dequantized at lookup)", info);

        using (LlamaModel model = LlamaModel.Load(path))
        {
            Assert.Contains($"{model.Weights.ConvertedBytes / 1e6:F1} MB of memory beside the file's", info);
        }
        var error = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["generate", "--model", path, "--max-tokens", "2", "--ignore-eos", "hi"], new StringWriter(), error));
        Assert.Matches(@"^converted 15 matrices to native types at load: [0-9.]+ MB, [0-9]+ ms", error.ToString());

        output = new StringWriter();
        Assert.Equal(0, CommandLine.Run(["info", SyntheticDecoder.Cached(DecoderShape.TinyQwen2(tied: true), QuantType.Q4_0)], output, new StringWriter()));
        Assert.Contains("decoder: no matrix converted at load", output.ToString());
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
            writer.Add(ChatTemplate.MetadataKey, GgufValue.Of(ChatMlJinja));
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
