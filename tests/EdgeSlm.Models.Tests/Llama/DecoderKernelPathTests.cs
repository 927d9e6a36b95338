using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Llama;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Llama;

/// <summary>
/// Which int8 kernel path the decoder runs on this CPU. .ci/run runs these on emulated boards (Cortex-A53 and A72
/// without the dot-product extension, A76 with it) and names the path each must get.
/// </summary>
public sealed class DecoderKernelPathTests(ITestOutputHelper output)
{
    /// <summary>Set by .ci/run for each emulated board: the path that board must get.</summary>
    private const string ExpectedPathVariable = "EDGESLM_EXPECTED_KERNEL_PATH";

    [Fact]
    public void Decoder_runs_the_path_the_board_must_get()
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q4_0));
        using var decoder = new LlamaDecoder(model, context: 8);
        if (RuntimeInformation.ProcessArchitecture == Architecture.Arm64)
        {
            // ARMv8.0 boards (Pi 3, Pi 4) have no SDOT; ARMv8.2 ones (Pi 5) do.
            Assert.Equal(Dp.IsSupported ? KernelPath.NeonDotProd : KernelPath.Neon, decoder.Path);
        }
        string? expected = Environment.GetEnvironmentVariable(ExpectedPathVariable);
        if (string.IsNullOrEmpty(expected))
        {
            Assert.Equal(KernelPaths.Fastest, decoder.Path);
            return;
        }
        Assert.True(KernelPaths.TryParse(expected, out KernelPath path), $"{ExpectedPathVariable}={expected} is no path name");
        Assert.Equal(path, decoder.Path);
    }

    [Theory]
    [InlineData("llama", "q4_0", true)]
    [InlineData("qwen2", "q8_0", false)]
    public void Every_supported_path_gives_the_default_paths_logits(string architecture, string typeName, bool tied)
    {
        // On an A76 this holds the NEON (ARMv8.0) loops to the SDOT ones on the same file; elsewhere each x64 tier
        // to the widest. The integer sums are exact on every path; the float ops may add in another order.
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(LlamaDecoderTests.Shape(architecture, tied), type));
        int vocabulary = model.Config.VocabularySize;
        int[] prompt = LlamaDecoderTests.Prompt(6, seed: 17);
        var expected = new float[prompt.Length * vocabulary];
        using (var fastest = new LlamaDecoder(model, context: 8, threads: 1, batchSize: 4))
        {
            fastest.Evaluate(prompt, expected);
        }
        var actual = new float[prompt.Length * vocabulary];
        foreach (KernelPath path in KernelPaths.Supported.Where(p => p != KernelPath.Reference))
        {
            using var decoder = new LlamaDecoder(model, context: 8, threads: 1, batchSize: 4, path: path);
            decoder.Evaluate(prompt, actual);
            double minimum = 1;
            for (int t = 0; t < prompt.Length; t++)
            {
                float[] e = expected.AsSpan(t * vocabulary, vocabulary).ToArray(), a = actual.AsSpan(t * vocabulary, vocabulary).ToArray();
                minimum = Math.Min(minimum, Cosine.Of(e, a));
                Assert.Equal(LlamaDecoderTests.ArgMax(e), LlamaDecoderTests.ArgMax(a));
            }
            output.WriteLine($"{KernelPaths.Name(path)}: minimum cosine {minimum:F7} to {KernelPaths.Name(KernelPaths.Default)}, identical: {expected.AsSpan().SequenceEqual(actual)}");
            Assert.True(minimum >= 0.99999, $"{KernelPaths.Name(path)}: minimum cosine {minimum:F7}");
        }
    }
}
