using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Positional;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Llama;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Llama;

/// <summary>The decoder on synthetic files: config from the keys, the fast forward pass held to the reference.</summary>
public sealed class LlamaDecoderTests(ITestOutputHelper output)
{
    public static TheoryData<string, string, bool> Files() => new()
    {
        { "llama", "f32", true }, { "llama", "f16", true }, { "llama", "q8_0", false }, { "llama", "q4_0", true },
        { "qwen2", "f32", false }, { "qwen2", "f16", false }, { "qwen2", "q8_0", true }, { "qwen2", "q4_0", false },
    };

    internal static DecoderShape Shape(string architecture, bool tied) =>
        architecture == "llama" ? DecoderShape.TinyLlama(tied) : DecoderShape.TinyQwen2(tied);

    /// <summary>Minimum cosine between two computations of the same logits, per weight type.</summary>
    internal static double Tolerance(QuantType type) => type switch
    {
        QuantType.F32 => 0.99999,
        QuantType.F16 => 0.9999,
        QuantType.Q8_0 => 0.999,
        _ => 0.995,
    };

    internal static int[] Prompt(int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => random.Next(Gpt2Vocabulary.EndOfTextId)).ToArray();
    }

    [Fact]
    public void Config_is_read_from_the_architecture_keys()
    {
        using LlamaModel llama = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(tied: false), QuantType.Q4_0));
        LlamaConfig c = llama.Config;
        Assert.Equal(LlamaArchitecture.Llama, c.Architecture);
        Assert.Equal((64, 2, 4, 2, 16, 32, 192), (c.HiddenSize, c.LayerCount, c.HeadCount, c.KvHeadCount, c.HeadSize, c.KvSize, c.FeedForwardSize));
        Assert.Equal(Gpt2Vocabulary.Tokens.Length, c.VocabularySize);
        Assert.False(c.TiedOutput);
        Assert.NotSame(llama.Weights.TokenEmbedding, llama.Weights.Output);
        Assert.Equal(QuantType.Q4_0, llama.Weights.Layers[1].Down.Type);
        Assert.Null(llama.Weights.Layers[0].QueryBias);

        using LlamaModel qwen = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyQwen2(tied: true), QuantType.F16));
        Assert.Equal(LlamaArchitecture.Qwen2, qwen.Config.Architecture);
        Assert.Equal(Kernels.Positional.RopeLayout.Halves, qwen.Config.Architecture.Rope);
        Assert.Equal(1e6f, qwen.Config.RopeBase);
        Assert.True(qwen.Config.TiedOutput);
        Assert.Same(qwen.Weights.TokenEmbedding, qwen.Weights.Output);
        Assert.Equal(32, qwen.Weights.Layers[0].KeyBias!.Length);
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Fast_forward_pass_agrees_with_the_reference_at_every_position(string architecture, string typeName, bool tied)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(Shape(architecture, tied), type));
        int vocabulary = model.Config.VocabularySize;
        int[] prompt = Prompt(TestEnvironment.DecoderTokens(24), seed: 5);
        var reference = new LlamaReference(model, context: 64);
        // Batches of 7 tokens: the prompt runs as 7 + 7 + 7 + 3 (7 + 5 under qemu, at 12 tokens), so batch boundaries are covered.
        using var decoder = new LlamaDecoder(model, context: 64, threads: 2, batchSize: 7);
        var fast = new float[prompt.Length * vocabulary];
        decoder.Evaluate(prompt, fast);
        var expected = new float[vocabulary];
        double minimum = 1;
        int argmaxAgree = 0;
        for (int t = 0; t < prompt.Length; t++)
        {
            reference.Forward(prompt[t], t, expected);
            float[] actual = fast.AsSpan(t * vocabulary, vocabulary).ToArray();
            minimum = Math.Min(minimum, Cosine.Of(expected, actual));
            argmaxAgree += ArgMax(expected) == ArgMax(actual) ? 1 : 0;
        }
        output.WriteLine($"{architecture} {typeName} {(tied ? "tied" : "untied")}: minimum cosine {minimum:F7}, argmax agrees at {argmaxAgree} of {prompt.Length}");
        Assert.True(minimum >= Tolerance(type), $"minimum cosine {minimum:F7}");
        if (type == QuantType.F32)
        {
            Assert.Equal(prompt.Length, argmaxAgree);
        }
    }

    [Theory]
    [InlineData("llama", "q4_0")]
    [InlineData("qwen2", "f32")]
    public void Reference_kernel_path_runs_every_op_on_its_reference_and_agrees_with_the_default_path(string architecture, string typeName)
    {
        // EDGESLM_KERNELS=reference: the int8 products, attention, RMSNorm, RoPE, SwiGLU and the dense products all
        // take their reference loops; the integer products are bit-exact across paths, the float ops within rounding.
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(Shape(architecture, tied: false), type));
        int vocabulary = model.Config.VocabularySize;
        int[] prompt = Prompt(16, seed: 9);
        using var fast = new LlamaDecoder(model, context: 32, threads: 2, batchSize: 8);
        using var reference = new LlamaDecoder(model, context: 32, threads: 2, batchSize: 8, path: KernelPath.Reference);
        var expected = new float[prompt.Length * vocabulary];
        var actual = new float[prompt.Length * vocabulary];
        fast.Evaluate(prompt, expected);
        reference.Evaluate(prompt, actual);
        for (int t = 0; t < prompt.Length; t++)
        {
            float[] e = expected.AsSpan(t * vocabulary, vocabulary).ToArray(), a = actual.AsSpan(t * vocabulary, vocabulary).ToArray();
            Assert.True(Cosine.Of(e, a) >= 0.99999, $"position {t}: cosine {Cosine.Of(e, a):F7}");
            Assert.Equal(ArgMax(e), ArgMax(a));
        }
    }

    [Theory]
    [InlineData("llama", "q4_0")]
    [InlineData("qwen2", "f32")]
    public void Token_by_token_decoding_equals_one_batch_and_truncation_replays(string architecture, string typeName)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(Shape(architecture, tied: true), type));
        int vocabulary = model.Config.VocabularySize;
        int[] prompt = Prompt(10, seed: 9);
        using var batched = new LlamaDecoder(model, context: 32, threads: 1, batchSize: 16);
        var all = new float[prompt.Length * vocabulary];
        batched.Evaluate(prompt, all);
        using var single = new LlamaDecoder(model, context: 32, threads: 1, batchSize: 1);
        var logits = new float[vocabulary];
        for (int t = 0; t < prompt.Length; t++)
        {
            single.Decode(prompt[t], logits);
            Assert.True(Cosine.Of(logits, all.AsSpan(t * vocabulary, vocabulary).ToArray()) >= 0.999999, $"position {t}");
        }
        Assert.Equal(prompt.Length, single.Position);

        // Keep the first 6 positions, run the rest again: the same logits as the first time.
        single.Truncate(6);
        single.Prefill(prompt.AsSpan(6), logits);
        Assert.Equal(all.AsSpan((prompt.Length - 1) * vocabulary, vocabulary).ToArray(), logits);
    }

    [Theory]
    [InlineData("llama", "q4_0", 64)]
    [InlineData("qwen2", "f32", 64)]
    [InlineData("llama", "q8_0", 3)]
    public void A_tree_of_continuations_gives_each_branch_the_logits_of_running_it_alone(string architecture, string typeName, int batchSize)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(Shape(architecture, tied: false), type));
        int vocabulary = model.Config.VocabularySize;
        int[] prefix = Prompt(9, seed: 4);
        // Three branches sharing tokens: a-b-c, a-b-d, e-f (parents index the tree's own tokens; -1 follows the prefix).
        int[] tree = [301, 302, 303, 304, 305, 306];
        int[] parents = [-1, 0, 1, 1, -1, 4];
        int[][] branches = [[301, 302, 303], [301, 302, 304], [305, 306]];
        int[][] nodes = [[0, 1, 2], [0, 1, 3], [4, 5]];
        using var decoder = new LlamaDecoder(model, context: 64, threads: 2, batchSize: batchSize);
        var logits = new float[vocabulary];
        decoder.Prefill(prefix, logits);
        var treeLogits = new float[tree.Length * vocabulary];
        decoder.EvaluateTree(tree, parents, treeLogits);
        Assert.Equal(prefix.Length, decoder.Position); // the sequence is as it was
        for (int b = 0; b < branches.Length; b++)
        {
            decoder.Truncate(prefix.Length);
            var alone = new float[branches[b].Length * vocabulary];
            decoder.Evaluate(branches[b], alone);
            for (int d = 0; d < branches[b].Length; d++)
            {
                float[] expected = alone.AsSpan(d * vocabulary, vocabulary).ToArray();
                float[] actual = treeLogits.AsSpan(nodes[b][d] * vocabulary, vocabulary).ToArray();
                Assert.Equal(expected, actual);
                Assert.Equal(ArgMax(expected), ArgMax(actual));
            }
        }
        // A parent after its child is refused.
        Assert.Throws<ArgumentException>(() => decoder.EvaluateTree([1, 2], [1, -1], new float[2 * vocabulary]));
    }

    [Theory]
    [InlineData("llama", "q4_0")]
    [InlineData("qwen2", "f16")]
    public void A_restored_prefix_state_gives_the_logits_and_tokens_of_running_the_prefix_again(string architecture, string typeName)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(Shape(architecture, tied: true), type));
        int vocabulary = model.Config.VocabularySize;
        int[] prefix = Prompt(20, seed: 11);
        int[] suffix = Prompt(6, seed: 12);
        var expected = new float[vocabulary];
        var actual = new float[vocabulary];

        using var direct = new LlamaDecoder(model, context: 64, threads: 2, batchSize: 8);
        direct.Prefill(prefix, expected);
        direct.Prefill(suffix, expected);

        using var reused = new LlamaDecoder(model, context: 64, threads: 2, batchSize: 8);
        reused.Prefill(prefix, actual);
        DecoderState state = reused.SaveState();
        Assert.Equal(20, state.Positions);
        reused.Prefill(Prompt(9, seed: 13), actual); // another request after the prefix
        reused.RestoreState(state);
        Assert.Equal(20, reused.Position);
        reused.Prefill(suffix, actual);
        Assert.Equal(expected, actual);

        // And greedy generation from there: the same tokens.
        for (int step = 0; step < 8; step++)
        {
            int next = ArgMax(expected);
            Assert.Equal(next, ArgMax(actual));
            direct.Decode(next, expected);
            reused.Decode(next, actual);
        }
        Assert.Equal(expected, actual);

        using LlamaModel other = LlamaModel.Load(SyntheticDecoder.Cached(Shape(architecture == "llama" ? "qwen2" : "llama", tied: true), type));
        using var foreign = new LlamaDecoder(other, context: 64);
        Assert.Throws<ArgumentException>(() => foreign.RestoreState(state));
    }

    [Fact]
    public void A_full_context_is_refused_with_a_message()
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q8_0));
        using var decoder = new LlamaDecoder(model, context: 4);
        var logits = new float[model.Config.VocabularySize];
        decoder.Prefill([1, 2, 3], logits);
        var e = Assert.Throws<InvalidOperationException>(() => decoder.Prefill([4, 5], logits));
        Assert.Contains("3 of 4 positions", e.Message);
    }

    [Theory]
    [InlineData("llama.attention.head_count_kv", "metadata 'llama.attention.head_count_kv' = 3 does not divide")]
    [InlineData("blk.1.ffn_down.weight", "tensor 'blk.1.ffn_down.weight' is 192 x 32, expected 192 x 64")]
    [InlineData("blk.0.attn_norm.weight", "tensor 'blk.0.attn_norm.weight' is missing")]
    [InlineData("general.architecture", "metadata 'general.architecture' = 'gpt9' is not a decoder")]
    [InlineData("llama.attention.layer_norm_rms_epsilon", "metadata 'llama.attention.layer_norm_rms_epsilon' is missing")]
    public void A_hostile_file_fails_in_one_line_naming_the_key_or_tensor(string broken, string expected)
    {
        string source = SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q8_0);
        using GgufFile original = GgufFile.Open(source);
        var writer = new GgufWriter();
        foreach ((string key, GgufValue value) in original.Metadata)
        {
            if (key == broken && key.EndsWith("head_count_kv", StringComparison.Ordinal)) writer.Add(key, GgufValue.Of(3u));
            else if (key == broken && key == "general.architecture") writer.Add(key, GgufValue.Of("gpt9"));
            else if (key != broken) writer.Add(key, value);
        }
        foreach (GgufTensorInfo tensor in original.Tensors)
        {
            if (tensor.Name == broken && tensor.Name.EndsWith("ffn_down.weight", StringComparison.Ordinal))
            {
                writer.AddTensor(tensor.Name, tensor.Type, [tensor.Dimensions[0], 32], original.TensorBytes(tensor)[..(int)(tensor.ByteSize / 2)].ToArray());
            }
            else if (tensor.Name != broken)
            {
                writer.AddTensor(tensor.Name, tensor.Type, tensor.Dimensions, original.TensorBytes(tensor).ToArray());
            }
        }
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-decoder-tests", $"hostile-{Guid.NewGuid():N}.gguf");
        writer.WriteTo(path);
        try
        {
            var e = Assert.Throws<GgufFormatException>(() => LlamaModel.Load(path));
            Assert.DoesNotContain('\n', e.Message);
            Assert.StartsWith(path + ": ", e.Message);
            Assert.Contains(expected, e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    internal static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best]) best = i;
        }
        return best;
    }
}

/// <summary>Logits for a chosen set of token ids, and log-probabilities of continuations.</summary>
public sealed class LlamaScoringTests
{
    [Theory]
    [InlineData("llama", "q4_0", true)]
    [InlineData("qwen2", "q8_0", false)]
    [InlineData("qwen2", "f16", true)]
    [InlineData("llama", "f32", false)]
    public void Subset_logits_equal_those_of_the_full_output(string architecture, string typeName, bool tied)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(LlamaDecoderTests.Shape(architecture, tied), type));
        int[] prompt = LlamaDecoderTests.Prompt(21, seed: 21);
        var full = new float[model.Config.VocabularySize];
        using var a = new LlamaDecoder(model, context: 64, batchSize: 8);
        a.Prefill(prompt, full);

        int[] ids = [0, 7, 50258, 1234, 42, 50256, 31337];
        using var b = new LlamaDecoder(model, context: 64, batchSize: 8);
        LogitSubset subset = b.CreateSubset(ids);
        var some = new float[ids.Length];
        b.Prefill(prompt, subset, some);
        Assert.Equal(prompt.Length, b.Position);
        for (int i = 0; i < ids.Length; i++)
        {
            Assert.True(Math.Abs(full[ids[i]] - some[i]) <= 1e-5f * (1 + Math.Abs(full[ids[i]])), $"id {ids[i]}: {full[ids[i]]} vs {some[i]}");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => b.CreateSubset([model.Config.VocabularySize]));
    }

    [Fact]
    public void Continuation_log_probabilities_are_the_log_softmax_of_the_logits_at_each_step()
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyQwen2(), QuantType.Q4_0));
        int vocabulary = model.Config.VocabularySize;
        int[] prompt = LlamaDecoderTests.Prompt(12, seed: 31);
        int[] continuation = LlamaDecoderTests.Prompt(5, seed: 32);

        using var all = new LlamaDecoder(model, context: 64, batchSize: 1);
        var logits = new float[(prompt.Length + continuation.Length) * vocabulary];
        all.Evaluate([.. prompt, .. continuation], logits);

        using var scorer = new LlamaDecoder(model, context: 64, batchSize: 1);
        var last = new float[vocabulary];
        scorer.Prefill(prompt, last);
        var logProbabilities = new float[continuation.Length];
        double total = scorer.ScoreContinuation(last, continuation, logProbabilities);
        double expectedTotal = 0;
        for (int i = 0; i < continuation.Length; i++)
        {
            ReadOnlySpan<float> step = logits.AsSpan((prompt.Length - 1 + i) * vocabulary, vocabulary);
            double max = double.NegativeInfinity, sum = 0;
            foreach (float v in step) max = Math.Max(max, v);
            foreach (float v in step) sum += Math.Exp(v - max);
            double expected = step[continuation[i]] - max - Math.Log(sum);
            Assert.Equal(expected, logProbabilities[i], 1e-4);
            Assert.True(logProbabilities[i] < 0);
            expectedTotal += expected;
        }
        Assert.Equal(expectedTotal, total, 1e-3);
        Assert.Equal(prompt.Length + continuation.Length - 1, scorer.Position);
    }
}
