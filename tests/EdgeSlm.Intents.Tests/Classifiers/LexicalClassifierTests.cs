using EdgeSlm.Intents.Classifiers;
using EdgeSlm.Intents.Training;

namespace EdgeSlm.Intents.Tests.Classifiers;

/// <summary>The classifier on words beside the embedding head: what it learns, its file, and how the head combines the two.</summary>
public sealed class LexicalClassifierTests
{
    private static readonly string[] Classes = ["alarm_query", "alarm_set", "volume_down", "volume_mute"];

    // Each class differs from its neighbour by one or two words; the rest is shared filler.
    private static readonly string[][] Cores =
    [
        ["what alarms do i have", "which alarms are on", "show my alarms"],
        ["set an alarm", "wake me up with an alarm", "create an alarm"],
        ["turn the volume down", "lower the volume", "volume down a bit"],
        ["mute the volume", "mute the speaker", "silence the volume"],
    ];

    private static readonly string[] Openers = ["", "please ", "hey ", "could you ", "can you "];
    private static readonly string[] Closers = ["", " now", " thanks", " for me", " right away"];

    private static (string[] Texts, int[] Labels) Examples(IEnumerable<(int Opener, int Closer)> fillers)
    {
        var texts = new List<string>();
        var labels = new List<int>();
        foreach ((int opener, int closer) in fillers)
        {
            for (int c = 0; c < Classes.Length; c++)
            {
                foreach (string core in Cores[c])
                {
                    texts.Add(Openers[opener] + core + Closers[closer]);
                    labels.Add(c);
                }
            }
        }
        return (texts.ToArray(), labels.ToArray());
    }

    private static LexicalClassifier TrainedOnSomeFillers(out string[] unseenTexts, out int[] unseenLabels)
    {
        // Train on some opener/closer pairs, test on the others: the class words are known, the sentences are not.
        var all = (from o in Enumerable.Range(0, Openers.Length) from c in Enumerable.Range(0, Closers.Length) select (o, c)).ToArray();
        (string[] texts, int[] labels) = Examples(all.Where(p => (p.o + p.c) % 3 == 0));
        (unseenTexts, unseenLabels) = Examples(all.Where(p => (p.o + p.c) % 3 != 0));
        return LexicalClassifier.Train(Classes, texts, labels, new LexicalTraining());
    }

    [Fact]
    public void Lexical_classifier_tells_apart_intents_that_differ_by_one_word_in_unseen_sentences()
    {
        LexicalClassifier classifier = TrainedOnSomeFillers(out string[] texts, out int[] labels);
        var logProbabilities = new float[Classes.Length];
        for (int i = 0; i < texts.Length; i++)
        {
            classifier.LogProbabilities(texts[i], logProbabilities);
            Assert.Equal(1.0, logProbabilities.Sum(MathF.Exp), 4);
            Assert.True(Array.IndexOf(logProbabilities, logProbabilities.Max()) == labels[i], $"'{texts[i]}' taken for {Classes[Array.IndexOf(logProbabilities, logProbabilities.Max())]}");
        }
    }

    [Fact]
    public void Words_it_never_saw_count_as_no_words_at_all()
    {
        LexicalClassifier classifier = TrainedOnSomeFillers(out _, out _);
        var unknown = new float[Classes.Length];
        var empty = new float[Classes.Length];
        classifier.LogProbabilities("zxq blorp", unknown);
        classifier.LogProbabilities("", empty);
        Assert.Equal(empty, unknown);
        Assert.All(unknown, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(1.0, unknown.Sum(MathF.Exp), 4);
    }

    [Fact]
    public void Training_is_deterministic_for_a_seed()
    {
        (string[] texts, int[] labels) = Examples([(0, 0), (1, 2), (3, 4)]);
        LexicalClassifier first = LexicalClassifier.Train(Classes, texts, labels, new LexicalTraining(Seed: 5));
        LexicalClassifier second = LexicalClassifier.Train(Classes, texts, labels, new LexicalTraining(Seed: 5));
        Assert.Equal(Bytes(first), Bytes(second));
    }

    [Fact]
    public void Vocabulary_drops_rare_terms_until_the_weights_fit_the_cap()
    {
        (string[] texts, int[] labels) = Examples([(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]);
        LexicalClassifier full = LexicalClassifier.Train(Classes, texts, labels, new LexicalTraining());
        int cap = full.VocabularySize * Classes.Length / 2;
        LexicalClassifier capped = LexicalClassifier.Train(Classes, texts, labels, new LexicalTraining(MaxWeights: cap));
        Assert.InRange(capped.VocabularySize * Classes.Length, 1, cap);
        // The words every sentence of a class shares are frequent, so they stay.
        var logProbabilities = new float[Classes.Length];
        capped.LogProbabilities("please mute the volume", logProbabilities);
        Assert.Equal("volume_mute", Classes[Array.IndexOf(logProbabilities, logProbabilities.Max())]);
    }

    [Fact]
    public void Lexical_head_read_back_from_its_file_gives_bit_identical_log_probabilities()
    {
        LexicalClassifier trained = TrainedOnSomeFillers(out string[] texts, out _);
        LexicalClassifier read = LexicalClassifier.Read(new MemoryStream(Bytes(trained)));
        Assert.Equal(trained.Classes, read.Classes);
        Assert.Equal(trained.VocabularySize, read.VocabularySize);
        var expected = new float[Classes.Length];
        var actual = new float[Classes.Length];
        foreach (string text in texts)
        {
            trained.LogProbabilities(text, expected);
            read.LogProbabilities(text, actual);
            Assert.Equal(expected, actual);
        }
    }

    [Theory]
    [InlineData("flipped weight bit", "checksum")]
    [InlineData("wrong magic", "lexical head has the wrong magic")]
    [InlineData("future version", "version 2 is not supported")]
    [InlineData("truncated", "truncated")]
    [InlineData("huge term count", "terms of")]
    public void Corrupt_lexical_head_is_rejected_with_a_message_saying_why(string damage, string message)
    {
        byte[] bytes = Bytes(TrainedOnSomeFillers(out _, out _));
        switch (damage)
        {
            case "flipped weight bit": bytes[bytes.Length - 60] ^= 0x10; break;
            case "wrong magic": bytes[0] = (byte)'X'; break;
            case "future version": bytes[8] = 2; break;
            case "truncated": bytes = bytes[..(bytes.Length - 33)]; break;
            case "huge term count":
                // The term count follows the magic, version, class count and the class names.
                int offset = 16 + Classes.Sum(c => 2 + c.Length);
                bytes[offset + 3] = 0x7f;
                break;
        }
        var e = Assert.Throws<InvalidDataException>(() => LexicalClassifier.Read(new MemoryStream(bytes)));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Intent_head_multiplies_the_embedding_probabilities_by_the_weighted_word_probabilities()
    {
        LexicalClassifier lexical = TrainedOnSomeFillers(out _, out _);
        // An embedding classifier that knows nothing: equal weights, so uniform probabilities.
        var embedding = new SoftmaxClassifier(Classes, 2, new float[Classes.Length * 2], new float[Classes.Length]);
        float[] features = [0.3f, -0.2f];
        const string text = "please mute the volume";
        var words = new float[Classes.Length];
        lexical.LogProbabilities(text, words);

        var alone = new float[Classes.Length];
        new IntentHead(embedding, lexical, 0).Predict(features, text, alone);
        Assert.All(alone, p => Assert.Equal(0.25f, p, 6));

        // Uniform embedding probabilities: the product is the word probabilities sharpened by the weight.
        var combined = new float[Classes.Length];
        new IntentHead(embedding, lexical, 0.5f).Predict(features, text, combined);
        float[] expected = words.Select(w => MathF.Exp(0.5f * w)).ToArray();
        float sum = expected.Sum();
        for (int c = 0; c < Classes.Length; c++)
        {
            Assert.Equal(expected[c] / sum, combined[c], 5);
        }
        Assert.Equal("volume_mute", Classes[Array.IndexOf(combined, combined.Max())]);
    }

    [Fact]
    public void Intent_head_file_keeps_the_lexical_classifier_and_its_weight()
    {
        LexicalClassifier lexical = TrainedOnSomeFillers(out string[] texts, out _);
        var random = new Random(3);
        var weights = Enumerable.Range(0, Classes.Length * 4).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        var head = new IntentHead(new SoftmaxClassifier(Classes, 4, weights, new float[Classes.Length]), lexical, 0.3f);
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-head-" + Guid.NewGuid().ToString("N")[..8] + ".head");
        try
        {
            Assert.True(HeadFile.TryWrite(path, head, threshold: 0.42));
            Assert.True(HeadFile.TryRead(path, out IntentHead? read, out double threshold));
            Assert.Equal(0.42, threshold);
            Assert.Equal(0.3f, read.LexicalWeight);
            Assert.NotNull(read.Lexical);
            float[] features = [0.1f, 0.2f, -0.3f, 0.4f];
            var expected = new float[Classes.Length];
            var actual = new float[Classes.Length];
            foreach (string text in texts.Take(20))
            {
                head.Predict(features, text, expected);
                read.Predict(features, text, actual);
                Assert.Equal(expected, actual);
            }

            // A damaged lexical part makes the whole head untrusted (the engine trains again).
            byte[] bytes = File.ReadAllBytes(path);
            bytes[^40] ^= 0x01;
            File.WriteAllBytes(path, bytes);
            Assert.False(HeadFile.TryRead(path, out _, out _));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static byte[] Bytes(LexicalClassifier classifier)
    {
        using var stream = new MemoryStream();
        classifier.Write(stream);
        return stream.ToArray();
    }
}
