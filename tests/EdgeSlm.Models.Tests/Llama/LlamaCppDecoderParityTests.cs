using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Llama;
using EdgeSlm.Testing;
using LLama.Common;
using LLama.Native;
using LLama;

namespace EdgeSlm.Models.Tests.Llama;

/// <summary>
/// llama.cpp (LLamaSharp 0.30.0's CPU backend) and EdgeSlm on the very same synthetic decoder files: logits of a
/// 64-token prompt at every position, and 64 greedy tokens after it. llama.cpp runs with an f32 KV cache and
/// without flash attention, so that both compute the same function (its defaults, an f16 cache and f16
/// accumulation of the attention output, round more than the weights do in an f32 file).
/// </summary>
public sealed class LlamaCppDecoderParityTests(ITestOutputHelper output)
{
    private static readonly int PromptLength = TestEnvironment.DecoderTokens(64);
    private static readonly int Generated = TestEnvironment.DecoderTokens(64);

    static LlamaCppDecoderParityTests()
    {
        LlamaCppLibrary.Configure();
    }

    [Theory]
    [MemberData(nameof(LlamaDecoderTests.Files), MemberType = typeof(LlamaDecoderTests))]
    public void Logits_and_greedy_tokens_agree_with_llama_cpp(string architecture, string typeName, bool tied)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        string path = SyntheticDecoder.Cached(LlamaDecoderTests.Shape(architecture, tied), type);
        Comparison c = Compare(path, $"{architecture} {typeName} {(tied ? "tied" : "untied")}");

        Assert.True(c.MinimumCosine >= LlamaDecoderTests.Tolerance(type), $"minimum cosine {c.MinimumCosine:F7}");
        if (type == QuantType.F32)
        {
            Assert.Equal(PromptLength, c.ArgmaxAgree);
        }
        if (type is QuantType.F32 or QuantType.F16)
        {
            Assert.Equal(c.TheirTokens, c.OurTokens);
        }
        else if (type == QuantType.Q4_0)
        {
            int required = c.FirstCloseStep < 0 ? Generated : c.FirstCloseStep;
            Assert.True(c.SameTokens >= required, $"greedy tokens differ at step {c.SameTokens}, before llama.cpp's first near tie at step {c.FirstCloseStep}");
        }
    }

    /// <summary>
    /// Files with storage-only types, which llama.cpp multiplies as stored and EdgeSlm converts at load: q8_0 for
    /// q4_k / q5_k / q6_k / q5_1 (q5_0 exactly), f32 for bf16 (exactly). The cosine asked is q8_0's (0.999) for the
    /// q8_0 conversions and f16's (0.9999) for bf16, whose products llama.cpp takes with activations rounded to bf16,
    /// except for files that keep k-quants (<see cref="KQuantTolerance"/>). Greedy tokens must agree up to
    /// llama.cpp's first step whose top two logits are within <see cref="ConvertedTieGap"/>: the engines quantize
    /// activations differently for these types, which moves logits by more than q4_0 files' 1e-3.
    /// </summary>
    [Theory]
    [MemberData(nameof(LlamaConversionTests.Files), MemberType = typeof(LlamaConversionTests))]
    public void Converted_types_agree_with_llama_cpp_on_the_stored_ones(string architecture, string types, bool tied, int hidden)
    {
        string path = LlamaConversionTests.File(architecture, types, tied, hidden);
        Comparison c = Compare(path, $"{architecture} {types} {(tied ? "tied" : "untied")} hidden {hidden}", ConvertedTieGap);
        bool kQuants = types is "q4_k_m" or "q5_k" or "q6_k" && hidden % 256 == 0;
        Assert.True(c.MinimumCosine >= (kQuants ? KQuantTolerance : LlamaConversionTests.Tolerance(types)), $"minimum cosine {c.MinimumCosine:F7}");
        int required = c.FirstCloseStep < 0 ? Generated : c.FirstCloseStep;
        Assert.True(c.SameTokens >= required, $"greedy tokens differ at step {c.SameTokens}, before llama.cpp's first top-two gap under {ConvertedTieGap} at step {c.FirstCloseStep}");
    }

    private const float ConvertedTieGap = 0.05f;

    /// <summary>
    /// llama.cpp multiplies k-quant weights with activations quantized to q8_K (256 per block, an f32 scale); EdgeSlm
    /// multiplies their q8_0 conversion with activations in q8_0. Both roundings of the activations move these
    /// synthetic models' logits: with the stored weights kept exactly (as f32, float activations) the minimum
    /// cosine against llama.cpp was 0.9989–0.9993 on the four k-quant files; with the q8_0 conversion 0.9986–0.9989.
    /// </summary>
    private const double KQuantTolerance = 0.998;

    private sealed record Comparison(double MinimumCosine, int ArgmaxAgree, int SameTokens, int FirstCloseStep, List<int> TheirTokens, List<int> OurTokens);

    private Comparison Compare(string path, string label, float closeGap = 1e-3f)
    {
        int[] prompt = LlamaDecoderTests.Prompt(PromptLength, seed: 64);

        var parameters = new ModelParams(path)
        {
            ContextSize = 256,
            BatchSize = 256,
            UBatchSize = 256,
            Threads = 1,
            GpuLayerCount = 0,
            TypeK = GGMLType.GGML_TYPE_F32,
            TypeV = GGMLType.GGML_TYPE_F32,
            FlashAttention = false,
        };
        using LLamaWeights weights = LLamaWeights.LoadFromFile(parameters);
        using LLamaContext context = weights.CreateContext(parameters);
        using LlamaModel model = LlamaModel.Load(path);
        using var decoder = new LlamaDecoder(model, context: 256, threads: 1);
        int vocabulary = model.Config.VocabularySize;
        Assert.Equal(vocabulary, weights.Vocab.Count);

        // The prompt in one batch, logits at every position.
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++)
        {
            batch.Add(prompt[i], i, LLamaSeqId.Zero, logits: true);
        }
        Assert.Equal(DecodeResult.Ok, context.NativeHandle.Decode(batch));
        var ours = new float[prompt.Length * vocabulary];
        decoder.Evaluate(prompt, ours);
        double minimum = 1;
        int argmaxAgree = 0;
        for (int i = 0; i < prompt.Length; i++)
        {
            float[] theirs = context.NativeHandle.GetLogitsIth(i).ToArray();
            float[] mine = ours.AsSpan(i * vocabulary, vocabulary).ToArray();
            minimum = Math.Min(minimum, Cosine.Of(theirs, mine));
            argmaxAgree += LlamaDecoderTests.ArgMax(theirs) == LlamaDecoderTests.ArgMax(mine) ? 1 : 0;
        }

        // Greedy generation, each engine on its own choices.
        int theirsNext = LlamaDecoderTests.ArgMax(context.NativeHandle.GetLogitsIth(prompt.Length - 1));
        int oursNext = LlamaDecoderTests.ArgMax(ours.AsSpan((prompt.Length - 1) * vocabulary, vocabulary));
        var theirTokens = new List<int>();
        var ourTokens = new List<int>();
        var theirGaps = new List<float>(); // llama.cpp's own top-1 minus top-2 logit at each step
        theirGaps.Add(TopTwoGap(context.NativeHandle.GetLogitsIth(prompt.Length - 1)));
        var logits = new float[vocabulary];
        for (int step = 0; step < Generated; step++)
        {
            theirTokens.Add(theirsNext);
            ourTokens.Add(oursNext);
            if (step == Generated - 1) break;
            batch.Clear();
            batch.Add(theirsNext, prompt.Length + step, LLamaSeqId.Zero, logits: true);
            Assert.Equal(DecodeResult.Ok, context.NativeHandle.Decode(batch));
            Span<float> next = context.NativeHandle.GetLogitsIth(0);
            theirGaps.Add(TopTwoGap(next));
            theirsNext = LlamaDecoderTests.ArgMax(next);
            decoder.Decode(oursNext, logits);
            oursNext = LlamaDecoderTests.ArgMax(logits);
        }
        int same = 0;
        while (same < Generated && theirTokens[same] == ourTokens[same]) same++;
        int firstClose = theirGaps.FindIndex(g => g < closeGap);
        output.WriteLine($"{label}: minimum cosine {minimum:F7}, argmax agrees at {argmaxAgree} of {prompt.Length}, greedy tokens identical for {same} of {Generated} (llama.cpp's first top-two gap < {closeGap} at step {firstClose}, smallest gap {theirGaps.Min():G3})");
        output.WriteLine($"llama.cpp: {string.Join(" ", theirTokens)}");
        output.WriteLine($"EdgeSlm:   {string.Join(" ", ourTokens)}");
        return new Comparison(minimum, argmaxAgree, same, firstClose, theirTokens, ourTokens);
    }

    private static float TopTwoGap(ReadOnlySpan<float> logits)
    {
        float first = float.NegativeInfinity, second = float.NegativeInfinity;
        foreach (float v in logits)
        {
            if (v > first) { second = first; first = v; }
            else if (v > second) second = v;
        }
        return first - second;
    }
}
