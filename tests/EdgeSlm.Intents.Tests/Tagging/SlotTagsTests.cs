using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Tagging;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Tokenizers;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.Tagging;

public sealed class SlotTagsTests
{
    [Fact]
    public void An_inside_tag_only_follows_its_own_slot()
    {
        Assert.True(SlotTags.CanFollow(SlotTags.Begin(2), SlotTags.Inside(2)));
        Assert.True(SlotTags.CanFollow(SlotTags.Inside(2), SlotTags.Inside(2)));
        Assert.False(SlotTags.CanFollow(SlotTags.Outside, SlotTags.Inside(2)));
        Assert.False(SlotTags.CanFollow(SlotTags.Begin(1), SlotTags.Inside(2)));
        Assert.True(SlotTags.CanFollow(SlotTags.Inside(1), SlotTags.Begin(2)));
        Assert.False(SlotTags.CanStart(SlotTags.Inside(0)));
        Assert.True(SlotTags.CanStart(SlotTags.Begin(0)));
    }

    [Theory]
    [InlineData("snips2017")]
    [InlineData("hwu64")]
    public void Spans_survive_word_pieces_and_back_on_dataset_sentences(string dataset)
    {
        List<IntentExample> examples = IntentExample.ReadJsonLines(Path.Combine(TestEnvironment.DatasetsDirectory, dataset, "train.jsonl"))
            .Where(e => e.Slots.Count > 0).Take(3000).ToList();
        var tokenizer = new WordPieceTokenizer(BundledModel.MiniLM.ReadVocabulary(), 512);
        var tags = new SlotTags(examples.SelectMany(e => e.Slots).Select(s => s.Slot).Distinct().Order(StringComparer.Ordinal).ToList());
        int same = 0;
        var spans = new List<TaggedSpan>();
        foreach (IntentExample example in examples)
        {
            int[] ids = tokenizer.Encode(example.Text);
            var starts = new int[ids.Length];
            var ends = new int[ids.Length];
            tokenizer.PieceRanges(example.Text, ids, starts, ends);
            // Every piece spells a range of the text.
            for (int i = 1; i < ids.Length - 1; i++)
            {
                Assert.True(starts[i] >= (i > 1 ? ends[i - 1] : 0) && ends[i] > starts[i] && ends[i] <= example.Text.Length, $"piece {i} of '{example.Text}'");
            }
            var labels = new int[ids.Length - 2];
            tags.Label(example.Slots, starts.AsSpan(1, labels.Length), ends.AsSpan(1, labels.Length), labels);
            spans.Clear();
            tags.Spans(example.Text, labels, starts.AsSpan(1, labels.Length), ends.AsSpan(1, labels.Length), spans);
            var expected = example.Slots.Where(s => s.End > s.Start).Select(s => (s.Slot, s.Start, s.End)).ToList();
            if (spans.Select(s => (s.Slot, s.Start, s.End)).SequenceEqual(expected)) same++;
        }
        // Annotations that cut a word (a few in each file) cannot come back whole.
        Assert.True(same >= examples.Count * 0.99, $"{same} of {examples.Count} round trips");
    }

    [Fact]
    public void A_span_is_widened_to_whole_words()
    {
        var tags = new SlotTags(["artist"]);
        const string text = "play beyonce now";
        // Pieces "play", "be", "##yon", "##ce", "now"; the tagger began the span on the second piece.
        int[] starts = [0, 5, 7, 10, 13], ends = [4, 7, 10, 12, 16];
        int[] path = [SlotTags.Outside, SlotTags.Outside, SlotTags.Begin(0), SlotTags.Inside(0), SlotTags.Outside];
        var spans = new List<TaggedSpan>();
        tags.Spans(text, path, starts, ends, spans);
        Assert.Equal([new TaggedSpan("artist", 5, 12)], spans);
    }
}
