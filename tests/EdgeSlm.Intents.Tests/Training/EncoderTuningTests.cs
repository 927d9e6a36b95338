using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Training;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Bert.Training;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Intents.Tests.Training;

/// <summary>The tuning loop on a tiny random encoder with a vocabulary of its own (seconds, not the bundled model's minutes).</summary>
public sealed class EncoderTuningTests
{
    private static readonly string[] Vocabulary =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "turn", "on", "off", "the", "light", "lamp", "play", "some", "music", "jazz", "rock",
         "what", "is", "weather", "in", "paris", "oslo", "kitchen", "hall"];

    private static readonly BertConfig Tiny = new(Vocabulary.Length, HiddenSize: 32, LayerCount: 2, HeadCount: 2, FeedForwardSize: 64,
        ContextLength: 16, TokenTypeCount: 2, LayerNormEpsilon: 1e-12f, Pooling: Pooling.Mean);

    private static List<IntentExample> Examples()
    {
        var examples = new List<IntentExample>();
        foreach (string room in new[] { "kitchen", "hall" })
        {
            examples.Add(new($"turn on the {room} light", "lights_on", [new SlotSpan("room", room, 12, 12 + room.Length)]));
            examples.Add(new($"turn off the {room} lamp", "lights_off", [new SlotSpan("room", room, 13, 13 + room.Length)]));
        }
        foreach (string genre in new[] { "jazz", "rock" })
        {
            examples.Add(new($"play some {genre}", "music", [new SlotSpan("genre", genre, 10, 10 + genre.Length)]));
            examples.Add(new($"play {genre} music", "music", [new SlotSpan("genre", genre, 5, 5 + genre.Length)]));
        }
        foreach (string city in new[] { "paris", "oslo" })
        {
            examples.Add(new($"what is the weather in {city}", "weather", []));
        }
        return examples;
    }

    private static readonly TuningSettings Settings = new(Epochs: 30, BatchSize: 4, LearningRate: 3e-3f, HeadLearningRate: 3e-2f, MaxTokens: 16, Seed: 5);

    [Fact]
    public void Tuning_lowers_both_losses_and_learns_the_training_intents()
    {
        BertParameters parameters = BertParameters.Random(Tiny, seed: 1, scale: 0.2f);
        IReadOnlyList<TuningEpoch> epochs = EncoderTuning.Tune(parameters, new WordPieceTokenizer(Vocabulary, Tiny.ContextLength), Examples(), Settings);
        Assert.Equal(Settings.Epochs, epochs.Count);
        Assert.True(epochs[^1].IntentLoss < 0.5 * epochs[0].IntentLoss, $"intent loss {epochs[0].IntentLoss:F3} -> {epochs[^1].IntentLoss:F3}");
        Assert.True(epochs[^1].SlotLoss < 0.5 * epochs[0].SlotLoss, $"slot loss {epochs[0].SlotLoss:F3} -> {epochs[^1].SlotLoss:F3}");
        Assert.Equal(1.0, epochs[^1].Accuracy);
    }

    [Fact]
    public void Tuning_gives_the_same_weights_on_one_thread_and_two()
    {
        var tokenizer = new WordPieceTokenizer(Vocabulary, Tiny.ContextLength);
        BertParameters one = BertParameters.Random(Tiny, seed: 2), two = one.Clone();
        EncoderTuning.Tune(one, tokenizer, Examples(), Settings with { Epochs = 3, Threads = 1 });
        EncoderTuning.Tune(two, tokenizer, Examples(), Settings with { Epochs = 3, Threads = 2 });
        foreach ((NamedTensor a, NamedTensor b) in one.Tensors.Zip(two.Tensors))
        {
            Assert.True(a.Values.AsSpan().SequenceEqual(b.Values), $"{a.Name} differs");
        }
    }

    [Fact]
    public void Tuning_at_learning_rate_zero_leaves_the_encoder_unchanged()
    {
        BertParameters parameters = BertParameters.Random(Tiny, seed: 3), before = parameters.Clone();
        EncoderTuning.Tune(parameters, new WordPieceTokenizer(Vocabulary, Tiny.ContextLength), Examples(), Settings with { Epochs = 2, LearningRate = 0 });
        foreach ((NamedTensor a, NamedTensor b) in parameters.Tensors.Zip(before.Tensors))
        {
            Assert.True(a.Values.AsSpan().SequenceEqual(b.Values), $"{a.Name} changed");
        }
    }

    [Theory]
    [InlineData(0, 32, 5e-5f, 0.1f)]
    [InlineData(1, 0, 5e-5f, 0.1f)]
    [InlineData(1, 32, -1f, 0.1f)]
    [InlineData(1, 32, 5e-5f, 1f)]
    public void Tuning_refuses_settings_out_of_range(int epochs, int batch, float rate, float warmup) =>
        Assert.Throws<ArgumentException>(() => EncoderTuning.Tune(BertParameters.Random(Tiny, 4), new WordPieceTokenizer(Vocabulary, Tiny.ContextLength), Examples(),
            new TuningSettings(Epochs: epochs, BatchSize: batch, LearningRate: rate, WarmupShare: warmup)));
}
