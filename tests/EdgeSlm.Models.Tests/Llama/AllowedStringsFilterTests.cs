using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Models.Tests.Llama;

public sealed class AllowedStringsFilterTests
{
    private static readonly string[] Intents = ["turn_on_lights", "turn_off_lights", "set_timer", "weather", "play_music", "café_order"];

    [Theory]
    [InlineData(0f, 1)]
    [InlineData(1.2f, 2)]
    [InlineData(1.2f, 3)]
    public void Generation_under_the_filter_ends_on_exactly_one_allowed_string(float temperature, int seed)
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyQwen2(), QuantType.Q4_0));
        ByteLevelBpeTokenizer tokenizer = ByteLevelBpeTokenizer.FromGguf(model.File);
        var filter = new AllowedStringsFilter(tokenizer, Intents);
        using var decoder = new LlamaDecoder(model, context: 128);
        var sampler = new TokenSampler(model.Config.VocabularySize, temperature, seed);
        var logits = new float[model.Config.VocabularySize];
        decoder.Prefill(tokenizer.Encode("Intent of 'switch the lights on':", addSpecial: true), logits);
        var reply = new List<int>();
        for (int step = 0; step < 40; step++)
        {
            filter.Apply(logits);
            int next = sampler.Next(logits);
            filter.Accept(next);
            if (tokenizer.IsEndOfGeneration(next)) break;
            reply.Add(next);
            decoder.Decode(next, logits);
        }
        string text = tokenizer.Decode(reply.ToArray());
        Assert.Contains(text, Intents);
        Assert.True(filter.IsComplete);
    }

    [Fact]
    public void The_filter_allows_only_continuations_and_ends_only_on_complete_strings()
    {
        using LlamaModel model = LlamaModel.Load(SyntheticDecoder.Cached(DecoderShape.TinyLlama(), QuantType.Q8_0));
        ByteLevelBpeTokenizer tokenizer = ByteLevelBpeTokenizer.FromGguf(model.File);
        var filter = new AllowedStringsFilter(tokenizer, ["on", "one", "off"]);
        var logits = new float[tokenizer.VocabularySize];
        filter.Apply(logits);
        int on = tokenizer.Encode("on", addSpecial: false).Single();
        int o = tokenizer.Encode("o", addSpecial: false).Single();
        int x = tokenizer.Encode("x", addSpecial: false).Single();
        Assert.Equal(0f, logits[on]);
        Assert.Equal(0f, logits[o]);
        Assert.Equal(float.NegativeInfinity, logits[x]);
        Assert.Equal(float.NegativeInfinity, logits[Gpt2Vocabulary.EndOfTextId]); // nothing complete yet
        filter.Accept(on);
        Assert.True(filter.IsComplete);
        Array.Clear(logits);
        filter.Apply(logits);
        Assert.Equal(0f, logits[Gpt2Vocabulary.EndOfTextId]);          // "on" may end here
        Assert.Equal(0f, logits[tokenizer.Encode("e", addSpecial: false).Single()]); // or go on to "one"
        Assert.Equal(float.NegativeInfinity, logits[tokenizer.Encode("f", addSpecial: false).Single()]);
        Assert.Throws<InvalidOperationException>(() => filter.Accept(x));
        filter.Reset();
        Assert.False(filter.IsComplete);
    }
}
