using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;
using LLama.Common;
using LLama;

namespace EdgeSlm.Models.Tests.Tokenizers;

/// <summary>Byte-level BPE from the GGUF metadata against llama.cpp's own tokenizer on the same files.</summary>
public sealed class ByteLevelBpeTokenizerTests(ITestOutputHelper output)
{
    static ByteLevelBpeTokenizerTests()
    {
        LlamaCppLibrary.Configure();
    }

    public static readonly string[] EdgeCases =
    [
        "", " ", "  ", "\n", "\n\n\t ", "a", "Hello World!!!", "hello world", "   leading and   multiple   spaces  ",
        "tabs\tand\nnewlines\r\n\n end\n", "1", "12", "123", "1234", "1234567890", "3.14159 and 1,000,000 or 2024-12-06",
        "$100 + 50% = ?", "x=1;y=2 // comment", "I'm you'RE they've we'll she'd it's DON'T", "don't stop",
        "emoji 😀👍🏽 family 👨‍👩‍👧 flag 🇩🇪", "café naïve Zürich ñandú façade", "ÀÉÎÕÜ àéîõü", "über-cool Straße",
        "日本語のテキスト", "中文分词测试", "한국어 문장", "mixed 日本 text 123 and émoji 🎉",
        "<|endoftext|>", "text <|endoftext|> spelled", "a<|im_start|>b<|im_end|>c", "<|im_start|>user\nhi<|im_end|>\n",
        "<|endoftext", "Ġ is not a space", "\u00a0non-breaking\u2009thin\u3000ideographic", "ﬁ ligature", "Ω ≈ ç √ ∫",
        "...---...", "!!!???", "http://example.com/path?q=1&r=2", "snake_case and camelCase and kebab-case",
        "    four spaces", "line one\n\nline three", " trailing space ", "Ⅻ roman numeral ½ fraction ²", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐐷 astral letters",
    ];

    public static TheoryData<string, bool> PreTokenizers() => new()
    {
        { "default", false }, { "llama-bpe", true }, { "qwen2", false }, { "smollm", false }, { "gpt-2", false },
    };

    private static string File(string pre, bool addBos) =>
        SyntheticDecoder.Cached(DecoderShape.TinyLlama() with { Pre = pre, AddBos = addBos, Layers = 1 }, QuantType.Q8_0);

    [Theory]
    [MemberData(nameof(PreTokenizers))]
    public void Tokens_equal_llama_cpp_on_dataset_sentences_and_edge_cases(string pre, bool addBos)
    {
        string path = File(pre, addBos);
        using GgufFile file = GgufFile.Open(path);
        ByteLevelBpeTokenizer ours = ByteLevelBpeTokenizer.FromGguf(file);
        Assert.Equal(pre, ours.PreTokenizer.Names.Contains(pre) ? pre : ours.PreTokenizer.Name);
        using LLamaWeights theirs = LLamaWeights.LoadFromFile(new ModelParams(path) { GpuLayerCount = 0 });

        List<string> sentences = DatasetSentences.Take(550);
        int compared = 0;
        var mismatches = new List<string>();
        void Compare(string text, bool addSpecial, bool parseSpecial)
        {
            int[] expected = theirs.Tokenize(text, addSpecial, parseSpecial, System.Text.Encoding.UTF8).Select(t => (int)t).ToArray();
            int[] actual = ours.Encode(text, addSpecial, parseSpecial);
            compared++;
            if (!expected.SequenceEqual(actual))
            {
                mismatches.Add($"{(parseSpecial ? "special " : "")}'{text}': llama.cpp [{string.Join(",", expected)}] ours [{string.Join(",", actual)}]");
            }
        }
        foreach (string sentence in sentences)
        {
            Compare(sentence, addSpecial: true, parseSpecial: false);
        }
        foreach (string text in EdgeCases)
        {
            Compare(text, addSpecial: true, parseSpecial: false);
            Compare(text, addSpecial: false, parseSpecial: true);
        }
        output.WriteLine($"{pre}: {compared - mismatches.Count} of {compared} tokenizations identical ({sentences.Count} dataset sentences, {EdgeCases.Length} edge cases twice)");
        foreach (string m in mismatches.Take(20)) output.WriteLine(m);
        Assert.True(sentences.Count >= 2000);
        Assert.Empty(mismatches);
    }

    [Fact]
    public void Decoding_returns_the_text_and_control_tokens_print_nothing()
    {
        using GgufFile file = GgufFile.Open(File("qwen2", addBos: false));
        ByteLevelBpeTokenizer tokenizer = ByteLevelBpeTokenizer.FromGguf(file);
        foreach (string text in EdgeCases.Where(t => !t.Contains("<|", StringComparison.Ordinal)))
        {
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text, addSpecial: false)));
        }
        int[] ids = tokenizer.Encode("a<|im_end|>b", addSpecial: false, parseSpecial: true);
        Assert.Equal(3, ids.Length);
        Assert.True(tokenizer.IsControl(ids[1]));
        Assert.Equal("ab", tokenizer.Decode(ids));
        Assert.True(tokenizer.IsEndOfGeneration(Gpt2Vocabulary.EndOfTextId));
        Assert.True(tokenizer.IsEndOfGeneration(Gpt2Vocabulary.EndOfTextId + 2)); // <|im_end|>, as llama.cpp marks it
        Assert.False(tokenizer.IsEndOfGeneration(Gpt2Vocabulary.EndOfTextId + 1)); // <|im_start|>
    }

    [Fact]
    public void Tokens_spelled_outside_the_byte_map_decode_as_their_own_utf8()
    {
        using GgufFile original = GgufFile.Open(File("qwen2", addBos: false));
        var writer = new GgufWriter();
        foreach ((string key, GgufValue value) in original.Metadata)
        {
            if (key == "tokenizer.ggml.tokens")
            {
                string[] tokens = (string[])value.AsArray<string>(key).Clone();
                tokens[300] = "\U0001F600x\u4E2D"; // an emoji (a surrogate pair), a mapped byte, a CJK character
                writer.Add(key, GgufValue.Of(tokens));
            }
            else writer.Add(key, value);
        }
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-tests", $"odd-token-{Guid.NewGuid():N}.gguf");
        writer.WriteTo(path);
        try
        {
            using GgufFile file = GgufFile.Open(path);
            ByteLevelBpeTokenizer tokenizer = ByteLevelBpeTokenizer.FromGguf(file);
            var buffer = new byte[tokenizer.MaxBytes(300)];
            int n = tokenizer.TokenBytes(300, buffer);
            Assert.Equal("\U0001F600x\u4E2D", System.Text.Encoding.UTF8.GetString(buffer, 0, n));
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Theory]
    [InlineData("tokenizer.ggml.pre", "metadata 'tokenizer.ggml.pre' = 'klingon' is not a pre-tokenizer")]
    [InlineData("tokenizer.ggml.token_type", "metadata 'tokenizer.ggml.token_type' has 3 entries for 50259 tokens")]
    [InlineData("tokenizer.ggml.merges", "metadata 'tokenizer.ggml.merges' entry 1 is not two tokens separated by a space")]
    [InlineData("tokenizer.ggml.eos_token_id", "metadata 'tokenizer.ggml.eos_token_id' = 50259 is not a token id")]
    [InlineData("tokenizer.ggml.model", "metadata 'tokenizer.ggml.model' = 'bert'")]
    public void Hostile_tokenizer_metadata_fails_in_one_line_naming_the_key(string key, string expected)
    {
        using GgufFile original = GgufFile.Open(File("qwen2", addBos: false));
        var writer = new GgufWriter();
        foreach ((string k, GgufValue value) in original.Metadata)
        {
            writer.Add(k, k != key ? value : key switch
            {
                "tokenizer.ggml.pre" => GgufValue.Of("klingon"),
                "tokenizer.ggml.token_type" => GgufValue.Of(new[] { 1, 1, 1 }),
                "tokenizer.ggml.merges" => GgufValue.Of(new[] { "a b", "ab" }),
                "tokenizer.ggml.eos_token_id" => GgufValue.Of(50259u),
                _ => GgufValue.Of("bert"),
            });
        }
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-tests", $"hostile-tokenizer-{Guid.NewGuid():N}.gguf");
        writer.WriteTo(path);
        try
        {
            using GgufFile file = GgufFile.Open(path);
            var e = Assert.Throws<GgufFormatException>(() => ByteLevelBpeTokenizer.FromGguf(file));
            Assert.DoesNotContain('\n', e.Message);
            Assert.Contains(expected, e.Message);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }
}
