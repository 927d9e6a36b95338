using EdgeSlm.EdgeModule.Cli;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.EdgeModule.Tests.Cli;

public sealed class TrainCommandTests
{
    public static TheoryData<string[], int, string> BadArguments => new()
    {
        { ["train", "-o", "x.gguf"], CommandLine.ExitUsage, "--intents is required" },
        { ["train", "--intents", "x.jsonl"], CommandLine.ExitUsage, "--o is required" },
        { ["train", "--intents", "x.jsonl", "--epochs", "0", "-o", "x.gguf"], CommandLine.ExitUsage, "--epochs" },
        { ["train", "--intents", "x.jsonl", "--rate", "fast", "-o", "x.gguf"], CommandLine.ExitUsage, "--rate must be a number" },
        { ["train", "--intents", "x.jsonl", "--type", "q4_k", "-o", "x.gguf"], CommandLine.ExitUsage, "--type q4_k" },
        { ["train", "--intents", "x.jsonl", "--frobnicate", "1", "-o", "x.gguf"], CommandLine.ExitUsage, "frobnicate" },
        { ["train", "--intents", "/nonexistent/intents.jsonl", "-o", "x.gguf"], CommandLine.ExitFailure, "/nonexistent/intents.jsonl" },
    };

    [Theory]
    [MemberData(nameof(BadArguments))]
    public void Train_refuses_bad_arguments_with_one_line(string[] args, int exit, string message)
    {
        var error = new StringWriter();
        Assert.Equal(exit, CommandLine.Run(args, new StringWriter(), error));
        string text = error.ToString().TrimEnd();
        Assert.DoesNotContain('\n', text);
        Assert.Contains(message, text);
    }

    [Fact]
    public void Train_writes_a_model_the_module_loads()
    {
        string directory = Path.Combine(Path.GetTempPath(), "edgeslm-train-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        try
        {
            string intents = Path.Combine(directory, "intents.jsonl");
            File.WriteAllLines(intents,
            [
                """{"text": "turn on the kitchen light", "intent": "lights_on", "slots": [{"slot": "room", "value": "kitchen", "start": 12, "end": 19}]}""",
                """{"text": "switch off the hall lamp", "intent": "lights_off", "slots": [{"slot": "room", "value": "hall", "start": 15, "end": 19}]}""",
                """{"text": "what is the weather in oslo", "intent": "weather", "slots": []}""",
            ]);
            string tuned = Path.Combine(directory, "tuned.gguf");
            var output = new StringWriter();
            var error = new StringWriter();
            int exit = CommandLine.Run(["train", "--intents", intents, "--epochs", "2", "--batch", "2", "--type", "f32", "-o", tuned], output, error);
            Assert.True(exit == CommandLine.ExitOk, error.ToString());
            string[] lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.StartsWith("tuning all-MiniLM-L6-v2 on 3 examples of 3 intents (2 with slots)", lines[0]);
            Assert.StartsWith("epoch 1: ", lines[1]);
            Assert.Contains("intent loss", lines[2]);
            Assert.StartsWith($"wrote {tuned}", lines[3]);

            using BertModel model = BertModel.Load(tuned);
            Assert.Equal("all-MiniLM-L6-v2 (tuned)", model.Name);
            using var encoder = new BertEncoder(model);
            int[] ids = new WordPieceTokenizer(model.Vocabulary, model.Config.ContextLength).Encode("turn on the kitchen light");
            var embedding = new float[model.Config.HiddenSize];
            encoder.Encode(ids, [ids.Length], embedding);
            Assert.Equal(1.0, Math.Sqrt(embedding.Sum(v => (double)v * v)), 4);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
