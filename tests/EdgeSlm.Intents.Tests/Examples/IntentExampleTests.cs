using System.Text.Json;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Testing;

namespace EdgeSlm.Intents.Tests.Examples;

public sealed class IntentExampleTests
{
    [Theory]
    [InlineData("snips2017")]
    [InlineData("hwu64")]
    [InlineData("ha_intents_en")]
    public void Every_slot_span_of_the_shared_datasets_slices_to_its_value(string dataset)
    {
        // The files give offsets in code points; SNIPS has an emoji (two UTF-16 units) before some slots.
        List<IntentExample> examples = IntentExample.ReadJsonLines(Path.Combine(TestEnvironment.DatasetsDirectory, dataset, "train.jsonl"));
        Assert.True(examples.Count > 500);
        int spans = 0;
        foreach (IntentExample example in examples)
        {
            foreach (SlotSpan slot in example.Slots)
            {
                Assert.Equal(slot.Value, example.Text[slot.Start..slot.End]);
                spans++;
            }
        }
        Assert.True(spans > 100);
    }

    [Fact]
    public void A_malformed_line_is_reported_with_file_and_line()
    {
        string path = Path.GetTempFileName();
        File.WriteAllLines(path, ["{\"text\": \"hi\", \"intent\": \"greet\", \"slots\": []}", "{\"text\": \"no intent\"}"]);
        var e = Assert.Throws<FormatException>(() => IntentExample.ReadJsonLines(path));
        Assert.Contains($"{path}:2", e.Message);
        File.Delete(path);
    }
}
