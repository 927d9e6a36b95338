using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Llama;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Llama;

[Collection(AllocationCollection.Name)]
public sealed class DecoderAllocationTests
{
    [Theory]
    [InlineData("llama", "q4_0")]
    [InlineData("qwen2", "f16")]
    [InlineData("qwen2", "f32")]
    public void Prefill_and_decoding_allocate_nothing_after_warm_up(string architecture, string typeName)
    {
        QuantType type = QuantTypeTraits.Parse(typeName).Type;
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(LlamaDecoderTests.Shape(architecture, tied: true), type));
        // One thread: all of the decoder's work is on this thread, so the per-thread count is exact.
        using var decoder = new LlamaDecoder(model, context: 128, threads: 1, batchSize: 16);
        var sampler = new TokenSampler(model.Config.VocabularySize, temperature: 0.7f, seed: 1);
        var logits = new float[model.Config.VocabularySize];
        int[] prompt = LlamaDecoderTests.Prompt(20, seed: 3);
        decoder.Prefill(prompt, logits);
        decoder.Decode(sampler.Next(logits), logits);
        decoder.Reset();

        long before = GC.GetAllocatedBytesForCurrentThread();
        decoder.Prefill(prompt, logits);
        for (int i = 0; i < 20; i++)
        {
            decoder.Decode(sampler.Next(logits), logits);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
