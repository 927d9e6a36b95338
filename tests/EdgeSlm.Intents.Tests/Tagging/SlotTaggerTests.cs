using EdgeSlm.Intents.Classifiers;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Features;
using EdgeSlm.Intents.Tagging;
using EdgeSlm.Intents.Training;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.Tagging;

public sealed class SlotTaggerTests(ConvertedModels models)
{
    private static readonly string[] Artists = ["taylor swift", "miles davis", "nina simone", "bob marley", "adele", "johnny cash", "ella fitzgerald", "david bowie"];
    private static readonly string[] Playlists = ["workout", "road trip", "chill evening", "morning coffee", "party", "focus"];
    private static readonly string[] Cities = ["paris", "new york", "tokyo", "berlin", "cairo", "lima"];

    /// <summary>Sentences of two intents with their spans, from a fixed seed.</summary>
    private static List<IntentExample> Examples(int count, int seed, string[] artists, string[] playlists, string[] cities)
    {
        var random = new Random(seed);
        var examples = new List<IntentExample>();
        for (int i = 0; i < count; i++)
        {
            if (i % 3 == 2)
            {
                string city = cities[random.Next(cities.Length)];
                string prefix = random.Next(2) == 0 ? "what is the weather in " : "will it rain in ";
                examples.Add(new IntentExample(prefix + city, "weather", [new SlotSpan("city", city, prefix.Length, prefix.Length + city.Length)]));
                continue;
            }
            string artist = artists[random.Next(artists.Length)], playlist = playlists[random.Next(playlists.Length)];
            string text = $"add {artist} to my {playlist} playlist";
            int a = 4, p = text.IndexOf(playlist, 4 + artist.Length, StringComparison.Ordinal);
            examples.Add(new IntentExample(text, "add_to_playlist", [new SlotSpan("artist", artist, a, a + artist.Length), new SlotSpan("playlist", playlist, p, p + playlist.Length)]));
        }
        return examples;
    }

    private static SlotTagger Train(SentenceFeatures features, List<IntentExample> examples)
    {
        var tokens = new TokenStates();
        features.Embed(examples.Select(e => e.Text).ToArray(), new float[examples.Count * features.Dimension], [], tokens);
        return SlotTaggerTraining.Train(examples, tokens, new TaggerTraining(Epochs: 15, Rate: 0.01f, Seed: 7))!;
    }

    private static List<TaggedSpan> Tag(SentenceFeatures features, SlotTagger tagger, string text, string intent)
    {
        var tokens = new TokenStates();
        features.Embed([text], new float[features.Dimension], [], tokens);
        var spans = new List<TaggedSpan>();
        tagger.Tag(text, intent, tokens.States(0), tokens.Starts(0), tokens.Ends(0), spans);
        return spans;
    }

    [Fact]
    public void Finds_names_it_never_saw_where_the_examples_put_such_names()
    {
        using BertModel minilm = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using var features = new SentenceFeatures([minilm], threads: 1);
        SlotTagger tagger = Train(features, Examples(150, 1, Artists, Playlists, Cities));
        Assert.Equal(["artist", "city", "playlist"], tagger.Tags.Slots);

        const string text = "add frank sinatra to my sunday dinner playlist";
        Assert.Equal([new TaggedSpan("artist", 4, 17), new TaggedSpan("playlist", 24, 37)], Tag(features, tagger, text, "add_to_playlist"));
        Assert.Equal([new TaggedSpan("city", 23, 29)], Tag(features, tagger, "what is the weather in madrid", "weather"));
        // Only the predicted intent's slots: the weather intent never had an artist.
        Assert.DoesNotContain(Tag(features, tagger, text, "weather"), s => s.Slot == "artist");
        // An intent without slots in training gets none.
        Assert.Empty(Tag(features, tagger, text, "greeting"));
    }

    [Fact]
    public void The_head_file_keeps_the_tagger_and_rejects_a_damaged_one()
    {
        using BertModel minilm = BertModel.Load(models.Path(BundledModel.MiniLM, QuantType.Q4_0));
        using var features = new SentenceFeatures([minilm], threads: 1);
        SlotTagger tagger = Train(features, Examples(60, 2, Artists, Playlists, Cities));
        var head = new IntentHead(new SoftmaxClassifier(["add_to_playlist", "weather"], 2, [1, 0, 0, 1], [0, 0]), null, 0);
        string path = Path.Combine(Path.GetTempPath(), "edgeslm-tagger-" + Guid.NewGuid().ToString("N")[..8] + ".head");
        try
        {
            Assert.True(HeadFile.TryWrite(path, head, 0.25, tagger));
            Assert.True(HeadFile.TryRead(path, out _, out double threshold, out SlotTagger? read));
            Assert.Equal(0.25, threshold);
            Assert.NotNull(read);
            Assert.Equal(tagger.Tags.Slots, read.Tags.Slots);
            Assert.True(tagger.Weights.SequenceEqual(read.Weights) && tagger.Transitions.SequenceEqual(read.Transitions) && tagger.Start.SequenceEqual(read.Start) && tagger.End.SequenceEqual(read.End));
            foreach (IntentExample example in Examples(30, 9, ["prince", "amy winehouse"], ["gym", "late night"], ["oslo", "rome"]))
            {
                Assert.Equal(Tag(features, tagger, example.Text, example.Intent), Tag(features, read, example.Text, example.Intent));
            }

            // One flipped bit in the tagger's weights: the head is not trusted, and the tagger says why.
            byte[] bytes = File.ReadAllBytes(path);
            bytes[^100] ^= 0x04;
            File.WriteAllBytes(path, bytes);
            Assert.False(HeadFile.TryRead(path, out _, out _, out _));
            using var buffer = new MemoryStream();
            tagger.Write(buffer);
            byte[] alone = buffer.ToArray();
            alone[^100] ^= 0x04;
            var error = Assert.Throws<InvalidDataException>(() => SlotTagger.Read(new MemoryStream(alone)));
            Assert.Contains("checksum", error.Message);
            Assert.DoesNotContain('\n', error.Message);
            error = Assert.Throws<InvalidDataException>(() => SlotTagger.Read(new MemoryStream(alone[..40])));
            Assert.Contains("more than the file has left", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
