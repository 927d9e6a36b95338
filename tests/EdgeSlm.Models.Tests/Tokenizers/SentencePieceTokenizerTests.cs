using System.Text;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tests.Llama;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;
using LLama;
using LLama.Common;
using LLama.Native;

namespace EdgeSlm.Models.Tests.Tokenizers;

/// <summary>
/// The SentencePiece-style tokenizer (<c>llama</c>) from the GGUF metadata against llama.cpp's own on the same files,
/// with a vocabulary trained on our sentences (<see cref="SentencePieceVocabulary"/>).
/// </summary>
public sealed class SentencePieceTokenizerTests(ITestOutputHelper output)
{
    static SentencePieceTokenizerTests()
    {
        LlamaCppLibrary.Configure();
    }

    /// <summary>The byte-level BPE's edge cases, plus what only a SentencePiece vocabulary has: its specials spelled, ▁, byte spellings.</summary>
    public static readonly string[] EdgeCases =
    [
        .. ByteLevelBpeTokenizerTests.EdgeCases,
        "<s>", "</s>", "<unk>", "a <s> b </s> c", "hello<unk>world", "<slot>", "set <slot> to 5", "x<slot><slot>y",
        "<|im_start|>", "<|im_start|><|im_end|>", " <|im_end|> ", "<0x41> is a byte token's spelling", "\u2581 is the space mark",
        "\u2581\u2581 two marks", "ends with spaces   ", "\t\tindent", "\r\n", "a\u0301 combining accent", "漢字とかな",
        "ÿ þ ð", "\U0001F9D1\u200D\U0001F4BB", "turn on the kitchen lights", "wake me up at 7:30 am tomorrow",
        // Runs of one letter: the same pair scores the same at every position, so the leftmost must win.
        "eee", "eeeee", "ooo", "lll", "sss", "ttt", "mmm hmm", "zzzzz", "1111111", "aaaaaa", "www.example.com", "booo",
    ];

    public static TheoryData<bool, bool> Files() => new() { { true, true }, { false, false }, { true, false } };

    private static string File(bool addBos, bool addSpacePrefix) =>
        SyntheticDecoder.Cached(DecoderShape.TinyLlamaSentencePiece(addBos, addSpacePrefix) with { Layers = 1 }, QuantType.Q8_0);

    [Fact]
    public void The_trained_vocabulary_has_the_layout_llama_files_have()
    {
        string[] tokens = SentencePieceVocabulary.Tokens;
        int[] types = SentencePieceVocabulary.TokenTypes;
        Assert.Equal(SentencePieceVocabulary.Size, tokens.Length);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens[..4]);
        Assert.Equal("<0xFF>", tokens[258]);
        Assert.Equal([2, 3, 3, 6], types[..4]);
        Assert.Equal(tokens.Length, tokens.Distinct(StringComparer.Ordinal).Count());
        Assert.Contains("\u2581the", tokens);
        Assert.DoesNotContain(tokens, t => t.Length > 0 && t[0] >= '\u4E00' && t[0] <= '\u9FFF'); // CJK takes the byte fallback
        // Learned pieces, then characters: each scores below the one before (minus the merge's index).
        float[] scores = SentencePieceVocabulary.Scores;
        int end = 259 + types.Skip(259).TakeWhile(t => t == 1).Count();
        Assert.True(end > 3000);
        for (int i = 260; i < end; i++)
        {
            Assert.True(scores[i] < scores[i - 1], $"score of token {i}");
        }
        Assert.Equal([3, 3, 4], types[end..]);
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Tokens_equal_llama_cpp_on_dataset_sentences_and_edge_cases(bool addBos, bool addSpacePrefix)
    {
        string path = File(addBos, addSpacePrefix);
        using GgufFile file = GgufFile.Open(path);
        var ours = (SentencePieceTokenizer)DecoderTokenizer.FromGguf(file);
        Assert.Equal(addBos, ours.AddBos);
        Assert.Equal(addSpacePrefix, ours.AddSpacePrefix);
        using LLamaWeights theirs = LLamaWeights.LoadFromFile(new ModelParams(path) { GpuLayerCount = 0 });
        Assert.Equal(LLamaVocabType.SentencePiece, theirs.Vocab.Type);

        List<string> sentences = DatasetSentences.Take(550);
        int compared = 0;
        var mismatches = new List<string>();
        void Compare(string text, bool addSpecial, bool parseSpecial)
        {
            int[] expected = theirs.Tokenize(text, addSpecial, parseSpecial, Encoding.UTF8).Select(t => (int)t).ToArray();
            int[] actual = ours.Encode(text, addSpecial, parseSpecial);
            compared++;
            if (!expected.SequenceEqual(actual))
            {
                mismatches.Add($"{(addSpecial ? "add " : "")}{(parseSpecial ? "parse " : "")}'{text}': llama.cpp [{string.Join(",", expected)}] ours [{string.Join(",", actual)}]");
            }
        }
        foreach (string sentence in sentences)
        {
            Compare(sentence, addSpecial: true, parseSpecial: false);
            Compare(sentence, addSpecial: false, parseSpecial: true);
        }
        foreach (string text in EdgeCases)
        {
            foreach (bool addSpecial in new[] { true, false })
            {
                Compare(text, addSpecial, parseSpecial: false);
                Compare(text, addSpecial, parseSpecial: true);
            }
        }
        // A lone surrogate reaches llama.cpp as U+FFFD (UTF-8 encoding replaces it), and so it does here.
        Compare("lone \uD83D surrogate", addSpecial: true, parseSpecial: false);
        output.WriteLine($"BOS {addBos}, space prefix {addSpacePrefix}: {compared - mismatches.Count} of {compared} tokenizations identical ({sentences.Count} dataset sentences twice, {EdgeCases.Length} edge cases four times, a lone surrogate)");
        foreach (string m in mismatches.Take(20)) output.WriteLine(m);
        Assert.True(sentences.Count >= 2000);
        Assert.Empty(mismatches);
    }

    [Fact]
    public void Byte_fallback_and_specials_give_the_ids_they_should()
    {
        using GgufFile file = GgufFile.Open(File(addBos: true, addSpacePrefix: true));
        var tokenizer = SentencePieceTokenizer.FromGguf(file);
        string[] tokens = SentencePieceVocabulary.Tokens;
        Assert.Equal(SentencePieceVocabulary.UnknownId, tokenizer.Unknown);
        // "中" is not in the vocabulary: its three UTF-8 bytes E4 B8 AD as byte tokens, after BOS and the prefix's ▁.
        int[] ids = tokenizer.Encode("中");
        Assert.Equal(SentencePieceVocabulary.BosId, ids[0]);
        Assert.Equal(["\u2581", "<0xE4>", "<0xB8>", "<0xAD>"], ids[1..].Select(i => tokens[i]));
        // Control tokens only when parsing specials; the user-defined one always, and a space prefix after each.
        Assert.DoesNotContain(tokenizer.Encode("<|im_end|>", addSpecial: false), i => tokenizer.IsControl(i));
        int[] parsed = tokenizer.Encode("<|im_end|>hi", addSpecial: false, parseSpecial: true);
        Assert.Equal("<|im_end|>", tokens[parsed[0]]);
        Assert.StartsWith("\u2581", tokens[parsed[1]]);
        int[] slot = tokenizer.Encode("a<slot>b", addSpecial: false);
        Assert.Contains(Array.IndexOf(tokens, SentencePieceVocabulary.UserDefinedToken), slot);
        Assert.Equal([SentencePieceVocabulary.UnknownId], tokenizer.Encode("<unk>", addSpecial: false, parseSpecial: true));
        Assert.Equal([SentencePieceVocabulary.BosId], tokenizer.Encode(""));
        Assert.Empty(tokenizer.Encode("", addSpecial: false));
    }

    [Fact]
    public void Token_pieces_equal_llama_cpp_and_decoding_returns_the_text()
    {
        string path = File(addBos: true, addSpacePrefix: true);
        using GgufFile file = GgufFile.Open(path);
        var ours = SentencePieceTokenizer.FromGguf(file);
        using LLamaWeights theirs = LLamaWeights.LoadFromFile(new ModelParams(path) { GpuLayerCount = 0 });

        // Every token's piece as llama_token_to_piece prints it (no specials rendered, nothing stripped), and with
        // the one leading space stripped that llama_detokenize strips from a text's first token.
        var mine = new byte[256];
        var theirsBuffer = new byte[256];
        int differ = 0;
        for (int id = 0; id < ours.VocabularySize; id++)
        {
            int n = ours.TokenBytes(id, mine);
            int m = NativeApi.llama_token_to_piece(theirs.Vocab, (LLamaToken)id, theirsBuffer, 0, false);
            bool same = mine.AsSpan(0, n).SequenceEqual(theirsBuffer.AsSpan(0, m));
            int s = NativeApi.llama_token_to_piece(theirs.Vocab, (LLamaToken)id, theirsBuffer, 1, false);
            same &= ours.Decode([id]) == Encoding.UTF8.GetString(theirsBuffer, 0, s);
            differ += same ? 0 : 1;
        }
        output.WriteLine($"{ours.VocabularySize - differ} of {ours.VocabularySize} token pieces identical");
        Assert.Equal(0, differ);

        // Text without specials decodes to itself (the prefix's space dropped); after BOS the space stays, as in llama.cpp.
        foreach (string text in EdgeCases.Where(t => !t.Contains('<', StringComparison.Ordinal) && !t.Contains('\u2581', StringComparison.Ordinal)).Concat(DatasetSentences.Take(50)))
        {
            Assert.Equal(text, ours.Decode(ours.Encode(text, addSpecial: false)));
        }
        Assert.Equal("a  b", ours.Decode(ours.Encode("a\u2581 b", addSpecial: false))); // ▁ in the text is a space to SentencePiece
        Assert.Equal(" hello", ours.Decode(ours.Encode("hello")));
        int[] chat = ours.Encode("<|im_start|>user\nhi<|im_end|>", addSpecial: false, parseSpecial: true);
        Assert.Equal(" user\nhi", ours.Decode(chat));
        Assert.True(ours.IsEndOfGeneration(SentencePieceVocabulary.EosId));
        Assert.True(ours.IsEndOfGeneration(Array.IndexOf(SentencePieceVocabulary.Tokens, "<|im_end|>")));
        Assert.False(ours.IsEndOfGeneration(Array.IndexOf(SentencePieceVocabulary.Tokens, "<|im_start|>")));
        Assert.True(((LLamaToken)SentencePieceVocabulary.EosId).IsEndOfGeneration(theirs.Vocab));
        Assert.True(((LLamaToken)Array.IndexOf(SentencePieceVocabulary.Tokens, "<|im_end|>")).IsEndOfGeneration(theirs.Vocab));
    }

    [Fact]
    public void A_tokenized_prompt_gives_llama_cpp_logits_and_greedy_tokens()
    {
        const int generated = 32;
        string path = SyntheticDecoder.Cached(DecoderShape.TinyLlamaSentencePiece(), QuantType.F32);
        var parameters = new ModelParams(path)
        {
            ContextSize = 256, BatchSize = 256, UBatchSize = 256, Threads = 1, GpuLayerCount = 0,
            TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32, FlashAttention = false,
        };
        using LLamaWeights weights = LLamaWeights.LoadFromFile(parameters);
        using LLamaContext context = weights.CreateContext(parameters);
        using LlamaModel model = LlamaModel.Load(path);
        DecoderTokenizer tokenizer = model.CreateTokenizer();
        using var decoder = new LlamaDecoder(model, context: 256, threads: 1);
        int vocabulary = model.Config.VocabularySize;

        string text = "<|im_start|>user\nplease turn off the lights in the living room and set an alarm for 6:45 ☀<|im_end|>\n<|im_start|>assistant\n";
        int[] prompt = tokenizer.Encode(text, addSpecial: true, parseSpecial: true);
        Assert.Equal(weights.Tokenize(text, true, true, Encoding.UTF8).Select(t => (int)t), prompt);

        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++)
        {
            batch.Add(prompt[i], i, LLamaSeqId.Zero, logits: true);
        }
        Assert.Equal(DecodeResult.Ok, context.NativeHandle.Decode(batch));
        var ours = new float[prompt.Length * vocabulary];
        decoder.Evaluate(prompt, ours);
        double minimum = 1;
        for (int i = 0; i < prompt.Length; i++)
        {
            float[] theirs = context.NativeHandle.GetLogitsIth(i).ToArray();
            float[] mine = ours.AsSpan(i * vocabulary, vocabulary).ToArray();
            minimum = Math.Min(minimum, Cosine.Of(theirs, mine));
            Assert.Equal(LlamaDecoderTests.ArgMax(theirs), LlamaDecoderTests.ArgMax(mine));
        }

        // Greedy tokens, each engine on its own choices, and the text each prints for them.
        int theirsNext = LlamaDecoderTests.ArgMax(context.NativeHandle.GetLogitsIth(prompt.Length - 1));
        int oursNext = LlamaDecoderTests.ArgMax(ours.AsSpan((prompt.Length - 1) * vocabulary, vocabulary));
        var theirTokens = new List<int>();
        var ourTokens = new List<int>();
        var theirText = new List<byte>();
        var ourText = new List<byte>();
        var piece = new byte[256];
        var logits = new float[vocabulary];
        for (int step = 0; step < generated; step++)
        {
            theirTokens.Add(theirsNext);
            ourTokens.Add(oursNext);
            theirText.AddRange(piece.AsSpan(0, NativeApi.llama_token_to_piece(weights.Vocab, (LLamaToken)theirsNext, piece, 0, false)).ToArray());
            ourText.AddRange(piece.AsSpan(0, tokenizer.TokenBytes(oursNext, piece)).ToArray());
            batch.Clear();
            batch.Add(theirsNext, prompt.Length + step, LLamaSeqId.Zero, logits: true);
            Assert.Equal(DecodeResult.Ok, context.NativeHandle.Decode(batch));
            theirsNext = LlamaDecoderTests.ArgMax(context.NativeHandle.GetLogitsIth(0));
            decoder.Decode(oursNext, logits);
            oursNext = LlamaDecoderTests.ArgMax(logits);
        }
        output.WriteLine($"{prompt.Length}-token prompt: minimum cosine {minimum:F7}; greedy: {Encoding.UTF8.GetString(ourText.ToArray())}");
        Assert.True(minimum >= LlamaDecoderTests.Tolerance(QuantType.F32), $"minimum cosine {minimum:F7}");
        Assert.Equal(theirTokens, ourTokens);
        Assert.Equal(theirText, ourText);
    }

    [Theory]
    [InlineData("tokenizer.ggml.scores", "metadata 'tokenizer.ggml.scores' has 3 entries for 4000 tokens")]
    [InlineData("scores-nan", "metadata 'tokenizer.ggml.scores' entry 7 is not a number")]
    [InlineData("missing-byte", "metadata 'tokenizer.ggml.tokens' has no byte token '<0x41>'")]
    [InlineData("duplicate", "metadata 'tokenizer.ggml.tokens' has '<s>' twice (ids 1 and 300)")]
    [InlineData("byte-type", "metadata 'tokenizer.ggml.token_type' entry 300 marks")]
    [InlineData("tokenizer.ggml.token_type", "metadata 'tokenizer.ggml.token_type' has 3 entries for 4000 tokens")]
    [InlineData("tokenizer.ggml.bos_token_id", "metadata 'tokenizer.ggml.bos_token_id' = 4000 is not a token id")]
    [InlineData("no-bos", "metadata 'tokenizer.ggml.add_bos_token' is true, but 'tokenizer.ggml.bos_token_id' names no token")]
    [InlineData("tokenizer.ggml.add_space_prefix", "metadata 'tokenizer.ggml.add_space_prefix' is string, not a bool")]
    public void Hostile_tokenizer_metadata_fails_in_one_line_naming_the_key(string change, string expected)
    {
        using GgufFile original = GgufFile.Open(File(addBos: true, addSpacePrefix: true));
        var writer = new GgufWriter();
        foreach ((string key, GgufValue value) in original.Metadata)
        {
            GgufValue? changed = (change, key) switch
            {
                ("tokenizer.ggml.scores", "tokenizer.ggml.scores") => GgufValue.Of(new[] { 0f, 0f, 0f }),
                ("scores-nan", "tokenizer.ggml.scores") => GgufValue.Of(Changed(value.AsArray<float>(key), 7, float.NaN)),
                ("missing-byte", "tokenizer.ggml.tokens") => GgufValue.Of(Changed(value.AsArray<string>(key), 3 + 0x41, "<0x4a>")), // a byte token still, in lower case
                ("duplicate", "tokenizer.ggml.tokens") => GgufValue.Of(Changed(value.AsArray<string>(key), 300, "<s>")),
                ("byte-type", "tokenizer.ggml.token_type") => GgufValue.Of(Changed(value.AsArray<int>(key), 300, 6)),
                ("tokenizer.ggml.token_type", "tokenizer.ggml.token_type") => GgufValue.Of(new[] { 1, 1, 1 }),
                ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.bos_token_id") => GgufValue.Of(4000u),
                ("no-bos", "tokenizer.ggml.bos_token_id") => GgufValue.Of(uint.MaxValue),
                ("tokenizer.ggml.add_space_prefix", "tokenizer.ggml.add_space_prefix") => GgufValue.Of("yes"),
                _ => null,
            };
            writer.Add(key, changed ?? value);
        }
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-tests", $"hostile-spm-{Guid.NewGuid():N}.gguf");
        writer.WriteTo(path);
        try
        {
            using GgufFile file = GgufFile.Open(path);
            var e = Assert.Throws<GgufFormatException>(() => DecoderTokenizer.FromGguf(file));
            Assert.DoesNotContain('\n', e.Message);
            Assert.Contains(expected, e.Message);
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    private static T[] Changed<T>(T[] values, int index, T value)
    {
        var copy = (T[])values.Clone();
        copy[index] = value;
        return copy;
    }
}
