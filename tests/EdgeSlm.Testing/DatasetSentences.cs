using System.Text.Json;

namespace EdgeSlm.Testing;

/// <summary>
/// Sentences from the intent datasets' train splits: from tests/data/&lt;dataset&gt;/train.jsonl in the repository
/// when it is there (a clone with nothing beside it), else from ../shared/datasets beside the repository.
/// </summary>
public static class DatasetSentences
{
    public static readonly string[] Datasets = ["snips2017", "hwu64", "clinc150", "ha_intents_en"];

    public static string TrainFile(string dataset)
    {
        string inRepository = Path.Combine(TestEnvironment.RepositoryRoot, "tests", "data", dataset, "train.jsonl");
        if (File.Exists(inRepository))
        {
            return inRepository;
        }
        string beside = Path.GetFullPath(Path.Combine(TestEnvironment.RepositoryRoot, "..", "shared", "datasets", dataset, "train.jsonl"));
        return File.Exists(beside) ? beside : throw new FileNotFoundException($"{dataset}/train.jsonl is neither at {inRepository} nor at {beside}");
    }

    /// <summary><paramref name="perDataset"/> sentences from each dataset, spread over its file (every k-th line).</summary>
    public static List<string> Take(int perDataset)
    {
        var result = new List<string>();
        foreach (string dataset in Datasets)
        {
            string[] lines = File.ReadAllLines(TrainFile(dataset));
            int step = Math.Max(1, lines.Length / perDataset);
            for (int i = 0, taken = 0; i < lines.Length && taken < perDataset; i += step, taken++)
            {
                using JsonDocument json = JsonDocument.Parse(lines[i]);
                result.Add(json.RootElement.GetProperty("text").GetString()!);
            }
        }
        return result;
    }
}
